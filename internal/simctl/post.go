package simctl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// post sends body to endpoint+path as one HTTP/1.0 request over a plain socket and returns the
// status code and the response body. It speaks just enough HTTP for the simulator's admin API
// on purpose: linking package net costs a zmysimctl start-up about twice over (its resolver
// pulls in cgo and libc; its poller adds threads), and the responder execs zmyctl once per node
// and command, so start-up is most of what a probe round costs. The endpoint must therefore
// name an IP address (or localhost), which is all the simulator ever binds.
func post(ctx context.Context, addr netip.AddrPort, path string, body []byte) (int, []byte, error) {
	fd, err := dial(ctx, addr)
	if err != nil {
		return 0, nil, err
	}
	defer syscall.Close(fd)
	var req bytes.Buffer
	req.Grow(len(body) + 128)
	req.WriteString("POST " + path + " HTTP/1.0\r\nHost: " + addr.String() +
		"\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n")
	req.Write(body)
	if err := writeAll(fd, req.Bytes()); err != nil {
		return 0, nil, &unreachableError{fmt.Errorf("send: %w", err)}
	}
	raw, err := readAll(fd, maxAnswer+64<<10)
	if err != nil {
		return 0, nil, &unreachableError{fmt.Errorf("read answer: %w", err)}
	}
	return parseResponse(raw)
}

// unreachableError is a failure to talk to the node at all (exit 3), as opposed to a node that
// answered nonsense (exit 1).
type unreachableError struct{ err error }

func (e *unreachableError) Error() string { return e.err.Error() }
func (e *unreachableError) Unwrap() error { return e.err }

// parseEndpoint accepts "http://IP:PORT[/]", "IP:PORT" and localhost in place of the IP.
func parseEndpoint(endpoint string) (netip.AddrPort, error) {
	hostport, ok := strings.CutPrefix(endpoint, "http://")
	if !ok && strings.Contains(endpoint, "://") {
		return netip.AddrPort{}, fmt.Errorf("endpoint %q: only http:// is supported", endpoint)
	}
	hostport = strings.TrimRight(hostport, "/")
	if h, p, ok := strings.Cut(hostport, ":"); ok && h == "localhost" {
		hostport = "127.0.0.1:" + p
	}
	ap, err := netip.ParseAddrPort(hostport)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("endpoint %q: want http://IP:PORT: %v", endpoint, err)
	}
	return ap, nil
}

// dial connects a blocking TCP socket. Reads and writes time out at ctx's deadline, or after
// HTTPTimeout: a hung node makes ctl hang as a real zmyctl would, until the driver kills it.
func dial(ctx context.Context, ap netip.AddrPort) (int, error) {
	var sa syscall.Sockaddr
	family := syscall.AF_INET
	if a := ap.Addr().Unmap(); a.Is4() {
		sa = &syscall.SockaddrInet4{Port: int(ap.Port()), Addr: a.As4()}
	} else {
		family = syscall.AF_INET6
		sa = &syscall.SockaddrInet6{Port: int(ap.Port()), Addr: a.As16()}
	}
	fd, err := syscall.Socket(family, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	timeout := HTTPTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(dl), time.Millisecond)
	}
	tv := syscall.NsecToTimeval(timeout.Nanoseconds())
	_ = syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv)
	_ = syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_SNDTIMEO, &tv)
	for {
		err = syscall.Connect(fd, sa)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		syscall.Close(fd)
		return -1, &unreachableError{fmt.Errorf("connect %s: %w", ap, err)}
	}
	return fd, nil
}

func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := syscall.Write(fd, b)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// readAll reads to EOF (the server closes an HTTP/1.0 exchange), refusing more than limit bytes.
func readAll(fd int, limit int) ([]byte, error) {
	buf := make([]byte, 0, 32<<10)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := syscall.Read(fd, buf[len(buf):cap(buf)])
		if err == syscall.EINTR {
			continue
		}
		if err == syscall.EAGAIN {
			return nil, errors.New("timed out")
		}
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
		if len(buf) > limit {
			return nil, fmt.Errorf("answer exceeds %d bytes", limit)
		}
	}
}

// parseResponse splits an HTTP/1.x response into its status code and body. The body is
// delimited by Content-Length when given, else by the end of the connection; chunked encoding
// is never sent to an HTTP/1.0 client.
func parseResponse(raw []byte) (int, []byte, error) {
	head, body, ok := bytes.Cut(raw, []byte("\r\n\r\n"))
	if !ok {
		return 0, nil, &unreachableError{errors.New("read answer: connection closed before the headers ended")}
	}
	lines := strings.Split(string(head), "\r\n")
	proto, rest, _ := strings.Cut(lines[0], " ")
	code, err := strconv.Atoi(strings.SplitN(rest, " ", 2)[0])
	if !strings.HasPrefix(proto, "HTTP/1.") || err != nil {
		return 0, nil, fmt.Errorf("malformed status line %q", lines[0])
	}
	for _, l := range lines[1:] {
		name, value, _ := strings.Cut(l, ":")
		value = strings.TrimSpace(value)
		switch strings.ToLower(name) {
		case "content-length":
			n, err := strconv.Atoi(value)
			if err != nil || n < 0 {
				return 0, nil, fmt.Errorf("malformed Content-Length %q", value)
			}
			if n > len(body) {
				return 0, nil, &unreachableError{fmt.Errorf("read answer: got %d of %d body bytes", len(body), n)}
			}
			body = body[:n]
		case "transfer-encoding":
			return 0, nil, fmt.Errorf("unsupported Transfer-Encoding %q", value)
		}
	}
	return code, body, nil
}
