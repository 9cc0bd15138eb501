package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/zmyorg/zmy-responder/internal/stack"
)

// benchStorage measures the responder's ingest with each storage backend, bbolt and etcd
// alternately in every repetition: a 1-member etcd (the Debian etcd-server) on the same machine,
// fresh for every run, as the responder's journal.
func benchStorage(ctx context.Context, bin, etcdBin, dir string, sizes, senders []int, d, warmup time.Duration, reps int) error {
	fmt.Printf("\nStorage backends: bbolt (fsync) against etcd (%s, 1 member, same machine; committed by etcd before 200)\n\n", etcdBin)
	fmt.Println("| alerts/notification | senders | bbolt deliveries/s | p50 | p99 | etcd deliveries/s | p50 | p99 | etcd/bbolt | responder CPU/delivery, bbolt | responder CPU/delivery, etcd | etcd CPU/delivery | deliveries per etcd commit |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, size := range sizes {
		tmpl := payloadTemplate(size)
		for _, s := range senders {
			var bolt, etcd []result
			var boltCPU, etcdCPU, serverCPU, perCommit []float64
			for range reps {
				p, err := startResponder(ctx, bin, dir)
				if err != nil {
					return err
				}
				c0, _ := p.cpu()
				r, err := drive(ctx, p.url, tmpl, s, d, warmup, 0)
				c1, _ := p.cpu()
				p.stop()
				if err != nil {
					return fmt.Errorf("bbolt, %d alerts, %d senders: %w", size, s, err)
				}
				bolt = append(bolt, r)
				boltCPU = append(boltCPU, perDelivery(c1-c0, r, warmup))

				e, err := startEtcd(ctx, etcdBin, dir)
				if err != nil {
					return err
				}
				p, err = startResponder(ctx, bin, dir, "--storage.backend=etcd", "--storage.etcd.endpoints="+e.url)
				if err != nil {
					e.stop()
					return err
				}
				c0, _ = p.cpu()
				e0, _ := e.cpu()
				n0 := etcdCommits(e.url)
				r, err = drive(ctx, p.url, tmpl, s, d, warmup, 0)
				c1, _ = p.cpu()
				e1, _ := e.cpu()
				n1 := etcdCommits(e.url)
				p.stop()
				e.stop()
				if err != nil {
					return fmt.Errorf("etcd, %d alerts, %d senders: %w", size, s, err)
				}
				etcd = append(etcd, r)
				etcdCPU = append(etcdCPU, perDelivery(c1-c0, r, warmup))
				serverCPU = append(serverCPU, perDelivery(e1-e0, r, warmup))
				if n1 > n0 {
					// The warm-up's commits are in the count: its deliveries are added in proportion.
					all := float64(r.Deliveries) * float64(r.Elapsed+warmup) / float64(r.Elapsed)
					perCommit = append(perCommit, all/(n1-n0))
				}
			}
			bm, em := summarize(bolt), summarize(etcd)
			fmt.Printf("| %d | %d | %.0f | %s | %s | %.0f | %s | %s | %.0f%% | %.0f µs | %.0f µs | %.0f µs | %.1f |\n",
				size, s, bm.rate, ms(bm.p50), ms(bm.p99), em.rate, ms(em.p50), ms(em.p99), 100*em.rate/bm.rate,
				medianOf(boltCPU), medianOf(etcdCPU), medianOf(serverCPU), medianOf(perCommit))
		}
	}
	return nil
}

// startEtcd runs a single-member etcd on free loopback ports with a fresh data directory in dir
// and waits until it is healthy. Its url field is the client URL.
func startEtcd(ctx context.Context, bin, dir string) (*process, error) {
	data, err := os.MkdirTemp(dir, "etcd-")
	if err != nil {
		return nil, err
	}
	clientPort, err := stack.FreePort()
	if err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}
	peerPort, err := stack.FreePort()
	if err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}
	client, peer := fmt.Sprintf("http://127.0.0.1:%d", clientPort), fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	p := &process{cmd: exec.CommandContext(ctx, bin, "--name=bench", "--data-dir="+data,
		"--listen-client-urls="+client, "--advertise-client-urls="+client,
		"--listen-peer-urls="+peer, "--initial-advertise-peer-urls="+peer,
		"--initial-cluster=bench="+peer, "--log-level=warn", "--logger=zap"),
		exited: make(chan struct{}), tail: &strings.Builder{}, url: client}
	p.cmd.Stderr = p.tail
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := hc.Get(client + "/health"); err == nil {
			ok := resp.StatusCode == http.StatusOK
			_ = resp.Body.Close()
			if ok {
				return p, nil
			}
		}
		select {
		case <-p.exited:
			return nil, fmt.Errorf("%s exited before it was healthy:\n%s", bin, p.tail)
		case <-ctx.Done():
			p.stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	p.stop()
	return nil, fmt.Errorf("%s not healthy after 30s:\n%s", bin, p.tail)
}

// etcdCommits reads etcd_server_proposals_committed_total from etcd's /metrics: one per write
// transaction (and a few of etcd's own); 0 when it cannot be read.
func etcdCommits(url string) float64 {
	hc := &http.Client{Timeout: 2 * time.Second}
	resp, err := hc.Get(url + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "etcd_server_proposals_committed_total "); ok {
			n, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return n
		}
	}
	return 0
}
