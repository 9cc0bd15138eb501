package deploy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/zmyorg/zmy-responder/internal/testenv"
)

// The StatefulSet's replica as Kubernetes would run it, against a real Debian etcd with what
// the manifests ask of it: TLS with client certificates (--client-cert-auth) and etcd auth,
// the user zmy-responder holding only read-write on the prefix (the grant deploy/README.md
// gives). The container's args (the endpoints pointed at the test etcd, $(POD_NAME) expanded)
// and the ConfigMap's config, with both Secrets as files where the pod mounts them, start a
// ready replica that leads the configured cluster: the credentials, paths and grant suffice.
func TestKubernetesHAReplicaOnTLSEtcdWithAuth(t *testing.T) {
	etcdBin := testenv.Binary(t, "etcd")
	_, objs := loadHA(t)
	base := loadManifests(t)
	var sts haStatefulSet
	require.NoError(t, objs["StatefulSet"].Spec.Decode(&sts))
	c := sts.Template.Spec.Containers[0]
	args := haArgs(c.Args)
	prefix := args["--storage.etcd.prefix"]

	// The pod's files: both Secrets and the config, under a scratch root.
	root := t.TempDir()
	p := newPKI(t)
	mounted := func(path string) string { return filepath.Join(root, path) }
	const password = "s3cret-etcd-password"
	for dir, data := range map[string]map[string]string{
		"/etc/zmy-responder/secrets": base["Secret"].StringData,
		"/etc/zmy-responder/etcd":    {"ca.crt": p.caPEM, "tls.crt": p.clientCert, "tls.key": p.clientKey, "password": password + "\n"},
	} {
		require.NoError(t, os.MkdirAll(mounted(dir), 0o700))
		for k, v := range data {
			require.NoError(t, os.WriteFile(filepath.Join(mounted(dir), k), []byte(v), 0o600))
		}
	}
	cfg := strings.ReplaceAll(objs["ConfigMap"].Data["zmy-responder.yml"], "/etc/zmy-responder/", mounted("/etc/zmy-responder")+"/")
	cfgPath := mounted(args["--config.file"])
	require.NoError(t, os.WriteFile(cfgPath, []byte(cfg), 0o600))

	// etcd over TLS, client certificates required.
	etcdDir := t.TempDir()
	for name, v := range map[string]string{"ca.crt": p.caPEM, "server.crt": p.serverCert, "server.key": p.serverKey} {
		require.NoError(t, os.WriteFile(filepath.Join(etcdDir, name), []byte(v), 0o600))
	}
	clientURL := fmt.Sprintf("https://127.0.0.1:%d", testenv.FreePort(t))
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", testenv.FreePort(t))
	startLogged(t, etcdDir, "etcd", etcdBin, "--name=tls", "--data-dir="+filepath.Join(etcdDir, "data"),
		"--listen-client-urls="+clientURL, "--advertise-client-urls="+clientURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL, "--initial-cluster=tls="+peerURL,
		"--cert-file="+filepath.Join(etcdDir, "server.crt"), "--key-file="+filepath.Join(etcdDir, "server.key"),
		"--client-cert-auth", "--trusted-ca-file="+filepath.Join(etcdDir, "ca.crt"), "--log-level=warn")

	// Users and the grant, then auth on: root for the administrator, zmy-responder with
	// read-write on the prefix only.
	cert, err := tls.X509KeyPair([]byte(p.clientCert), []byte(p.clientKey))
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM([]byte(p.caPEM)))
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	admin, err := clientv3.New(clientv3.Config{Endpoints: []string{clientURL}, DialTimeout: 5 * time.Second,
		TLS: &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS12}})
	require.NoError(t, err)
	defer admin.Close()
	for {
		sctx, scancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := admin.Status(sctx, clientURL)
		scancel()
		if err == nil {
			break
		}
		require.NoError(t, ctx.Err(), "etcd over TLS never answered: %v", err)
		time.Sleep(100 * time.Millisecond)
	}
	_, err = admin.RoleAdd(ctx, "root")
	require.NoError(t, err)
	_, err = admin.UserAdd(ctx, "root", "root-password")
	require.NoError(t, err)
	_, err = admin.UserGrantRole(ctx, "root", "root")
	require.NoError(t, err)
	_, err = admin.RoleAdd(ctx, "zmy-responder")
	require.NoError(t, err)
	_, err = admin.RoleGrantPermission(ctx, "zmy-responder", prefix, clientv3.GetPrefixRangeEnd(prefix),
		clientv3.PermissionType(clientv3.PermReadWrite))
	require.NoError(t, err)
	_, err = admin.UserAdd(ctx, "zmy-responder", password)
	require.NoError(t, err)
	_, err = admin.UserGrantRole(ctx, "zmy-responder", "zmy-responder")
	require.NoError(t, err)
	_, err = admin.AuthEnable(ctx)
	require.NoError(t, err)

	// The container's args, as the kubelet expands them for pod zmy-responder-0, listening on
	// free loopback ports instead of the pod's.
	bin := t.TempDir()
	require.NoError(t, testenv.Build(bin, "./cmd/zmy-responder"))
	web := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	var argv []string
	for _, a := range c.Args {
		k, _, _ := strings.Cut(a, "=")
		switch k {
		case "--storage.etcd.endpoints":
			a = k + "=" + clientURL
		case "--web.listen-address":
			a = k + "=" + web
		case "--grpc.listen-address":
			a = fmt.Sprintf("%s=127.0.0.1:%d", k, testenv.FreePort(t))
		case "--config.file":
			a = k + "=" + cfgPath
		}
		argv = append(argv, strings.ReplaceAll(a, "$(POD_NAME)", "zmy-responder-0"))
	}
	startLogged(t, root, "zmy-responder", filepath.Join(bin, "zmy-responder"), argv...)

	// Ready (the store answers), and it leads the configured cluster: its session, election
	// and journal all live under the granted prefix.
	want := `zmy_responder_leader{cluster="prod-a"} 1`
	var last string
	for {
		ready := httpGet(ctx, "http://"+web+"/-/ready")
		metrics := httpGet(ctx, "http://"+web+"/metrics")
		if strings.HasPrefix(ready, "200 ") && strings.Contains(metrics, want) {
			break
		}
		last = ready
		require.NoError(t, ctx.Err(), "the replica never became ready and leader; /-/ready: %s", last)
		time.Sleep(200 * time.Millisecond)
	}

	// The user cannot reach outside its prefix: the grant is all it has.
	user, err := clientv3.New(clientv3.Config{Endpoints: []string{clientURL}, DialTimeout: 5 * time.Second,
		Username: "zmy-responder", Password: password,
		TLS: &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS12}})
	require.NoError(t, err)
	defer user.Close()
	_, err = user.Put(ctx, "/elsewhere", "x")
	require.ErrorContains(t, err, "permission denied")
	resp, err := user.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	require.NoError(t, err)
	require.Positive(t, resp.Count, "the replica's keys are under %s", prefix)
}

// httpGet is "<code> <body>", or the error's text.
func httpGet(ctx context.Context, url string) string {
	rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, url, nil)
	if err != nil {
		return err.Error()
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return fmt.Sprintf("%d %s", resp.StatusCode, b)
}

// startLogged runs a process until the test ends (SIGTERM, then SIGKILL after 10s), logging
// its output when the test failed.
func startLogged(t *testing.T, dir, name, path string, args ...string) {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	logf, err := os.Create(logPath)
	require.NoError(t, err)
	cmd := exec.Command(path, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	require.NoError(t, cmd.Start(), "start %s", name)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logf.Close()
		if b, err := os.ReadFile(logPath); err == nil && t.Failed() {
			t.Logf("%s output:\n%s", name, b)
		}
	})
}
