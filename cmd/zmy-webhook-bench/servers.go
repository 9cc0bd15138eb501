package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/zmyorg/zmy-responder/internal/stack"
)

// serveNoop is the ceiling: an echo server whose /webhook reads the body and answers 200, in
// its own process like the responder. It prints its address on stdout.
func serveNoop(ctx context.Context) error {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.POST("/webhook", func(c echo.Context) error {
		if _, err := io.Copy(io.Discard, c.Request().Body); err != nil {
			return err
		}
		return c.JSON(http.StatusOK, map[string]string{"status": "success"})
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Printf("listening %s\n", l.Addr())
	hs := &http.Server{Handler: e, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = hs.Close()
	}()
	if err := hs.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// process is a server under test.
type process struct {
	cmd    *exec.Cmd
	url    string
	exited chan struct{}
	tail   *strings.Builder
}

// startProcess runs argv and waits until a line of its output matches ready, whose first group
// is the host:port it serves on.
func startProcess(ctx context.Context, argv []string, fromStderr bool, ready *regexp.Regexp) (*process, error) {
	p := &process{cmd: exec.CommandContext(ctx, argv[0], argv[1:]...), exited: make(chan struct{}), tail: &strings.Builder{}}
	var out io.ReadCloser
	var err error
	if fromStderr {
		out, err = p.cmd.StderrPipe()
	} else {
		out, err = p.cmd.StdoutPipe()
	}
	if err != nil {
		return nil, err
	}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", argv[0], err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		found := false
		for sc.Scan() {
			if !found {
				p.tail.WriteString(sc.Text() + "\n")
				if m := ready.FindStringSubmatch(sc.Text()); m != nil {
					found = true
					addr <- m[1]
				}
			}
		}
	}()
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	select {
	case a := <-addr:
		p.url = "http://" + a + "/webhook"
		return p, nil
	case <-p.exited:
		return nil, fmt.Errorf("%s exited before it was ready:\n%s", argv[0], p.tail)
	case <-time.After(30 * time.Second):
		p.stop()
		return nil, fmt.Errorf("%s not ready after 30s", argv[0])
	}
}

// stop is SIGTERM, then SIGKILL after 10s.
func (p *process) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// cpu is the user+system CPU time the process has used so far.
func (p *process) cpu() (time.Duration, error) { return stack.ProcessCPU(p.cmd.Process.Pid) }

// memory reads VmRSS and VmHWM (peak) of the process, in bytes.
func (p *process) memory() (rss, peak int64, err error) {
	return stack.ProcessMemory(p.cmd.Process.Pid)
}

var responderReady = regexp.MustCompile(`msg="zmy-responder ready" http=(\S+)`)

// startResponder runs the real daemon with a fresh journal and a config that accepts large
// notifications. The payloads name a cluster it does not know, so the runbook engine stays idle;
// that cluster's incident may hold every alert posted, so that the bench measures storing them.
// args are added to its command line (another storage backend).
func startResponder(ctx context.Context, bin, dir string, args ...string) (*process, error) {
	cfg := filepath.Join(dir, "bench.yml")
	if err := os.WriteFile(cfg, []byte("webhook:\n  max_body_bytes: 16777216\n  max_alerts_per_unknown_cluster: 100000000\n"), 0o600); err != nil {
		return nil, err
	}
	storage, err := os.MkdirTemp(dir, "journal-")
	if err != nil {
		return nil, err
	}
	argv := []string{bin, "--config.file=" + cfg, "--storage.path=" + storage,
		"--web.listen-address=127.0.0.1:0", "--grpc.listen-address=127.0.0.1:0"}
	return startProcess(ctx, append(argv, args...), true, responderReady)
}

var noopReady = regexp.MustCompile(`^listening (\S+)$`)

func startNoop(ctx context.Context) (*process, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return startProcess(ctx, []string{self, "--noop-server"}, false, noopReady)
}
