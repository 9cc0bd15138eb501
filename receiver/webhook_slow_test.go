package receiver

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// countingBody counts the bytes the server has read of a request body.
type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// stalledSender is a raw connection that sent a request's head and part of its body, and
// then nothing: the limit of a sender trickling one byte a second.
type stalledSender struct {
	conn     net.Conn
	read     *atomic.Int64 // body bytes the server has read
	answered atomic.Bool   // a response came back
}

// TestWebhookSlowSendersDoNotStarveSmallNotifications: 16 connections that stall inside a
// chunked body, then 16 more that declared 1 MiB and stall after 100 KiB, take the whole large
// lane; a 1-alert and a 100-alert notification are still answered while all 32 hang. The
// test waits on what the server has read, never on the clock.
func TestWebhookSlowSendersDoNotStarveSmallNotifications(t *testing.T) {
	env := newEnv(t, testClusters)
	var mu sync.Mutex
	counters := map[string]*atomic.Int64{}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id := r.Header.Get("X-Sender"); id != "" {
			mu.Lock()
			r.Body = countingBody{r.Body, counters[id]}
			mu.Unlock()
		}
		env.srv.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	addr := strings.TrimPrefix(hs.URL, "http://")

	var senders []*stalledSender
	t.Cleanup(func() { // before hs.Close: the server waits for their handlers
		for _, s := range senders {
			_ = s.conn.Close()
		}
	})
	stall := func(id, head string, body []byte) *stalledSender {
		t.Helper()
		s := &stalledSender{read: &atomic.Int64{}}
		mu.Lock()
		counters[id] = s.read
		mu.Unlock()
		conn, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		s.conn = conn
		senders = append(senders, s)
		_, err = fmt.Fprintf(conn, "POST /webhook HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nX-Sender: %s\r\n%s\r\n", addr, id, head)
		require.NoError(t, err)
		_, err = conn.Write(body)
		require.NoError(t, err)
		go func() {
			if _, err := http.ReadResponse(bufio.NewReader(conn), nil); err == nil {
				s.answered.Store(true)
			}
		}()
		return s
	}
	waitRead := func(what string, ss []*stalledSender, atLeast int64) {
		t.Helper()
		waitUntil(t, 60*time.Second, what, func() bool {
			for _, s := range ss {
				if s.read.Load() < atLeast {
					return false
				}
			}
			return true
		})
	}
	post := func(body []byte) int {
		t.Helper()
		// A deadline for the test, not a speed bound: a starved request would wait until the
		// stalled senders give up, which they never do here.
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, hs.URL+"/webhook", strings.NewReader(string(body)))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err, "a small notification waited behind stalled senders")
		defer resp.Body.Close()
		return resp.StatusCode
	}
	requireAllHanging := func() {
		t.Helper()
		for i, s := range senders {
			require.False(t, s.answered.Load(), "stalled sender %d was answered: the check proves nothing", i)
		}
	}

	var chunked []*stalledSender
	for i := range 16 {
		chunked = append(chunked, stall(fmt.Sprintf("chunked-%d", i), "Transfer-Encoding: chunked\r\n", []byte("1\r\n{\r\n")))
	}
	waitRead("the chunked senders' first byte read", chunked, 1)
	require.Equal(t, http.StatusOK, post(notification("east", "f000000000000001")))
	requireAllHanging()

	// Bodies past the small lane reserve their declared length: 16 × 1 MiB is the whole large
	// lane, held by senders that will never finish.
	var large []*stalledSender
	part := append([]byte(`{"alerts":[`), []byte(strings.Repeat(" ", 100<<10))...)
	for i := range 16 {
		large = append(large, stall(fmt.Sprintf("large-%d", i), fmt.Sprintf("Content-Length: %d\r\n", 1<<20), part))
	}
	waitRead("the large senders' first 100 KiB read", large, int64(len(part)))
	require.Equal(t, http.StatusOK, post(notification("east", "f000000000000002")))
	body := bigMessage(100)
	require.Less(t, len(body), smallBodyBytes, "a 100-alert notification is a small one")
	require.Equal(t, http.StatusOK, post(body))
	requireAllHanging()

	inc, err := env.j.Get(t.Context(), "inc-000001")
	require.NoError(t, err)
	require.Equal(t, 102, len(inc.Alerts), "every answered notification is journaled")
}
