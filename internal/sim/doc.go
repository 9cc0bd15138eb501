// Package sim owns the ZMY cluster simulator behind `bin/zmysim`: an in-memory model of a
// sharded Raft cluster that keeps the seed's flaw (every partition keeps a leader and keeps
// accepting writes), the per-node servers that expose it through the same surfaces a real
// node has (/metrics, /healthz, the zmyctl admin API, a peer TCP port, gRPC health, etcd lease
// keys), the faults a test can inject, and the audit log and invariants that catch a wrong
// runbook. It is usable in-process from Go tests (Start) and through the binary.
//
// The model, in short:
//   - Nodes connected by the network form components. A component keeps its leader while the
//     leader is alive and not suspended; otherwise, after ElectionDelay, it elects its most
//     up-to-date active member in a higher term — majority or not. A component of at most half
//     the nodes reports QUORUM_LOST but still accepts writes, so shards diverge.
//   - Client writes go round-robin to live nodes and are forwarded to their component's
//     leader; a suspended node, or a component without a leader, rejects them. An accepted
//     write is applied at once on every active member of the component.
//   - When components merge while their nodes run (a heal nobody contained), Raft's rule
//     decides: the most up-to-date leader wins and the others' divergent entries are
//     overwritten (NodeInfo.Overwritten counts them). That loss is what the SOP prevents.
//   - quorum recover arbitrates on the groups of the last split, after the network healed:
//     the one strict majority's log becomes every node's log; nodes stay suspended.
//   - A partition episode starts when the network splits and ends when it is whole again with
//     nothing suspended (after recover+resume, or at once if nothing was ever suspended). The
//     invariants (invariants.go) are judged per episode; a second successful recover in one
//     episode is one of them.
//   - Every admin command carries its caller's ZMY_ACTOR: the audit log records it, `raft state`
//     reports who suspended a node (suspended_by) and the cluster's last recover (last_recover),
//     so a responder can tell its own mutations from someone else's and learn whether a recover
//     it sent before crashing landed. A command the node has not applied yet (injected
//     slowness) is dropped when its caller goes away.
package sim
