package remediate

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/ha"
	"github.com/zmyorg/zmy-responder/internal/incident"
)

// Only the replica acting on a cluster commands its nodes: every node command goes through
// actingNodes, which asks the leadership right before sending. actingNodes embeds Nodes, so a
// method it forgets to wrap (or one added to Nodes later) would compile and send unfenced;
// this walks every method of Nodes, so such a method fails here.
func TestActingNodesSendsNothingWhenNotActing(t *testing.T) {
	f := newFakeNodes("n1")
	node := config.NodeConfig{ID: "n1", Admin: "n1:9000"}
	notActing := actingNodes{Nodes: f, acting: func() (incident.Fence, error) { return incident.Fence{}, ha.ErrStale }}
	acting := actingNodes{Nodes: f, acting: func() (incident.Fence, error) { return incident.Fence{}, nil }}
	it := reflect.TypeFor[Nodes]()
	require.Positive(t, it.NumMethod())
	args := func(m reflect.Method) []reflect.Value {
		var in []reflect.Value
		for i := range m.Type.NumIn() {
			switch p := m.Type.In(i); {
			case p.Implements(reflect.TypeFor[context.Context]()):
				in = append(in, reflect.ValueOf(t.Context()))
			case p == reflect.TypeFor[config.NodeConfig]():
				in = append(in, reflect.ValueOf(node))
			case p.Kind() == reflect.String:
				in = append(in, reflect.ValueOf("pre-recover-1"))
			default:
				t.Fatalf("%s: no test argument for a %s", m.Name, p)
			}
		}
		return in
	}
	for i := range it.NumMethod() {
		m := it.Method(i)
		t.Run(m.Name, func(t *testing.T) {
			before := len(f.calls)
			out := reflect.ValueOf(notActing).MethodByName(m.Name).Call(args(m))
			err, _ := out[len(out)-1].Interface().(error)
			require.Error(t, err)
			require.True(t, errors.Is(err, ha.ErrNotActing), "%v", err)
			require.Len(t, f.calls, before, "%s sent while not acting", m.Name)

			// The control: while acting, the same call reaches the node.
			reflect.ValueOf(acting).MethodByName(m.Name).Call(args(m))
			require.Len(t, f.calls, before+1, "%s not sent while acting", m.Name)
		})
	}
}

// A command sent while acting is cut off when the leadership may lapse (Fence.Until): a recover
// started just before the cut must not still be running when another replica leads, or that
// replica, finding the term unchanged, would send a second one.
func TestActingNodesCutCommandsAtTheLeadershipsEnd(t *testing.T) {
	f := newFakeNodes("n1")
	f.hang["n1"] = true
	node := config.NodeConfig{ID: "n1", Admin: "n1:9000"}
	until := time.Now().Add(100 * time.Millisecond)
	a := actingNodes{Nodes: f, acting: func() (incident.Fence, error) { return incident.Fence{Key: "k", Revision: 1, Until: until}, nil }}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // the command's own, far longer, deadline
	defer cancel()
	_, _, err := a.Recover(ctx, node)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.NoError(t, ctx.Err(), "ended by the leadership's end, not by the command's own deadline")
	require.False(t, time.Now().Before(until))
}
