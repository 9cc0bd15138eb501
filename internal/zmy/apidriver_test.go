package zmy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	commoncfg "github.com/prometheus/common/config"
	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/config"
)

func TestAPIRequestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		method string
		path   string
		fields map[string]string
		back   []string // the zmyctl form the node rebuilds, flags in name order
	}{
		{[]string{"status", "--quorum", "-o", "json"}, "GET", "/admin/v1/status", map[string]string{"quorum": "true"}, []string{"status", "--quorum"}},
		{[]string{"raft", "suspend", "--force"}, "POST", "/admin/v1/raft/suspend", map[string]string{"force": "true"}, nil},
		{[]string{"-o", "json", "snapshot", "save", "--tag", "false"}, "POST", "/admin/v1/snapshot/save", map[string]string{"tag": "false"}, []string{"snapshot", "save", "--tag", "false"}},
		{[]string{"snapshot", "save", "--tag=pre-recover-1"}, "POST", "/admin/v1/snapshot/save", map[string]string{"tag": "pre-recover-1"}, []string{"snapshot", "save", "--tag", "pre-recover-1"}},
		{[]string{"debug", "netcheck", "--full", "--output=json"}, "GET", "/admin/v1/debug/netcheck", map[string]string{"full": "true"}, []string{"debug", "netcheck", "--full"}},
		{[]string{"raft", "state"}, "GET", "/admin/v1/raft/state", map[string]string{}, nil},
		{[]string{"quorum", "recover", "--auto"}, "POST", "/admin/v1/quorum/recover", map[string]string{"auto": "true"}, nil},
	} {
		r := NewAPIRequest(tc.args)
		require.Equal(t, tc.method, r.Method, "%v", tc.args)
		require.Equal(t, tc.path, r.Path, "%v", tc.args)
		require.Equal(t, tc.fields, r.Fields, "%v", tc.args)
		back, err := r.Args()
		require.NoError(t, err)
		if tc.back == nil {
			tc.back = tc.args
		}
		require.Equal(t, tc.back, back)
	}
	require.Equal(t, `{"force":true}`, string(NewAPIRequest([]string{"raft", "suspend", "--force"}).body()))
	require.Equal(t, `{"tag":"true"}`, string(NewAPIRequest([]string{"snapshot", "save", "--tag", "true"}).body()))
	_, err := APIRequest{Path: "/other/status"}.Args()
	require.Error(t, err)
	_, err = APIRequest{Path: "/admin/v1/raft/--force"}.Args()
	require.Error(t, err)
}

// The api driver keeps the same evidence and metrics as the zmyctl driver: the request as Args,
// the answer as Stdout, commands_total and command_duration_seconds by command.
func TestAPIDriverEvidenceAndMetrics(t *testing.T) {
	s := startSim(t)
	reg := prometheus.NewRegistry()
	d := s.apiDriver(t, DriverOptions{Registerer: reg})
	n1 := s.nodes[0]

	_, res, err := d.Suspend(t.Context(), n1)
	require.NoError(t, err)
	require.Equal(t, []string{"POST", n1.Admin + "/admin/v1/raft/suspend", `{"force":true}`}, res.Args)
	require.Equal(t, CmdSuspend, res.Command)
	require.Equal(t, "n1", res.Node)
	require.Zero(t, res.Exit)
	require.True(t, strings.HasPrefix(res.Stdout, `{"node":"n1","raft_state":"suspended"`), res.Stdout)
	require.Positive(t, res.Duration)

	_, res, err = d.Status(t.Context(), n1)
	require.NoError(t, err)
	require.Equal(t, []string{"GET", n1.Admin + "/admin/v1/status?quorum=true"}, res.Args)

	s.fault(t, "partition", "n1,n2/n3")
	_, res, err = d.Recover(t.Context(), n1)
	require.ErrorIs(t, err, ErrNotConverged)
	require.Equal(t, ExitNotConverged, res.Exit, "the evidence keeps the zmyctl exit the answer stands for")
	require.Contains(t, res.Stderr, `"code":"not_converged"`)

	// Output past MaxOutput is cut and refused, as for zmyctl.
	small := s.apiDriver(t, DriverOptions{MaxOutput: 64, Registerer: reg})
	_, res, err = small.Netcheck(t.Context(), n1)
	require.ErrorIs(t, err, ErrMalformed)
	require.True(t, res.StdoutTruncated)

	require.Equal(t, 1.0, testutil.ToFloat64(d.metrics.commands.WithLabelValues(CmdSuspend, resultOK)))
	require.Equal(t, 1.0, testutil.ToFloat64(d.metrics.commands.WithLabelValues(CmdRecover, resultError)))
	require.Equal(t, 1.0, testutil.ToFloat64(d.metrics.commands.WithLabelValues(CmdNetcheck, resultError)))
	require.Equal(t, len(Commands), testutil.CollectAndCount(d.metrics.duration))
}

// TLS with a client certificate and a bearer token read from a file: the node (here behind a
// TLS-terminating proxy that checks both, as a sidecar would) answers, the connection is kept
// across calls, and the token shows nowhere in evidence or errors. A wrong CA, a missing client
// certificate and a wrong token are errors that say so, and never ErrUnreachable.
func TestAPIDriverTLSAndAuth(t *testing.T) {
	s := startSim(t)
	dir := t.TempDir()
	ca, caKey := newCA(t, "zmy test CA")
	otherCA, _ := newCA(t, "another CA")
	serverCert := issue(t, ca, caKey, "node", x509.ExtKeyUsageServerAuth)
	clientCert := issue(t, ca, caKey, "zmy-responder", x509.ExtKeyUsageClientAuth)
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, data, 0o600))
		return p
	}
	caFile := write("ca.pem", certPEM(ca))
	otherCAFile := write("other-ca.pem", certPEM(otherCA))
	certFile, keyFile := write("client.pem", certPEM(clientCert.Leaf)), write("client-key.pem", keyPEM(t, clientCert.PrivateKey))
	const token = "s3cr3t-t0ken-value"
	tokenFile := write("token", []byte(token+"\n"))
	wrongTokenFile := write("wrong-token", []byte("nope\n"))

	target, err := url.Parse(s.nodes[0].Admin)
	require.NoError(t, err)
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}
	var conns atomic.Int64
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)

	node := config.NodeConfig{ID: "n1", Admin: srv.URL}
	driver := func(name string, hc commoncfg.HTTPClientConfig) *APIDriver {
		d, err := NewAPIDriver(config.ClusterConfig{Name: name, Driver: config.DriverAPI, Nodes: []config.NodeConfig{node},
			AdminAPI: config.AdminAPIConfig{HTTPClientConfig: hc}}, DriverOptions{Timeout: 10 * time.Second})
		require.NoError(t, err)
		return d
	}
	good := commoncfg.HTTPClientConfig{
		Authorization: &commoncfg.Authorization{Type: "Bearer", CredentialsFile: tokenFile},
		TLSConfig:     commoncfg.TLSConfig{CAFile: caFile, CertFile: certFile, KeyFile: keyFile},
	}
	d := driver("tls", good)
	for range 20 {
		st, res, err := d.Status(t.Context(), node)
		require.NoError(t, err)
		require.Equal(t, QuorumOK, st.Quorum)
		require.NotContains(t, strings.Join(res.Args, " ")+res.Stdout+res.Stderr, token)
	}
	require.Equal(t, int64(1), conns.Load(), "one kept-alive connection for 20 calls")
	require.Same(t, d.client, driver("tls", good).client, "a driver rebuilt with the same config (a reload) keeps the pool")

	wrongToken := good
	wrongToken.Authorization = &commoncfg.Authorization{Type: "Bearer", CredentialsFile: wrongTokenFile}
	_, res, err := driver("tls-wrong-token", wrongToken).Status(t.Context(), node)
	var ee *ExitStatusError
	require.ErrorAs(t, err, &ee)
	require.Equal(t, http.StatusUnauthorized, ee.HTTPStatus)
	require.Equal(t, ExitError, res.Exit)
	require.Contains(t, err.Error(), "status n1: admin API answered 401: unauthorized")

	wrongCA := good
	wrongCA.TLSConfig.CAFile = otherCAFile
	_, _, err = driver("tls-wrong-ca", wrongCA).Status(t.Context(), node)
	require.ErrorContains(t, err, "certificate")
	require.NotErrorIs(t, err, ErrUnreachable, "a node that cannot be trusted is not a partitioned node")

	noCert := good
	noCert.TLSConfig.CertFile, noCert.TLSConfig.KeyFile = "", ""
	_, _, err = driver("tls-no-client-cert", noCert).Status(t.Context(), node)
	require.Error(t, err)
	require.NotErrorIs(t, err, ErrUnreachable)
	require.NotContains(t, err.Error(), token)
}

func newCA(t *testing.T, name string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return cert, key
}

// issue signs a certificate for 127.0.0.1 with ca.
func issue(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, name string, usage x509.ExtKeyUsage) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	require.NoError(t, err)
	leaf, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

func certPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func keyPEM(t *testing.T, key any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}
