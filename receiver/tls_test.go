package receiver

import (
	"bytes"
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
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"
)

// selfSigned writes a certificate for 127.0.0.1 and its key into dir and returns the pool that
// trusts it.
func selfSigned(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "zmy-responder test"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	writeFile(t, dir, "server.crt", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeFile(t, dir, "server.key", string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})))
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
}

// TestRunTLSAndBasicAuth serves through an exporter-toolkit web config: TLS with a self-signed
// certificate and basic_auth_users in front of every endpoint.
func TestRunTLSAndBasicAuth(t *testing.T) {
	dir := t.TempDir()
	pool := selfSigned(t, dir)
	hash, err := bcrypt.GenerateFromPassword([]byte("am-pass"), bcrypt.MinCost)
	require.NoError(t, err)
	web := writeFile(t, dir, "web.yml", "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"+
		"basic_auth_users:\n  alertmanager: "+string(hash)+"\n")

	r := startRun(t, Options{ConfigFile: configFile(t, testClusters), WebConfigFile: web})
	httpsURL := strings.Replace(r.url, "http://", "https://", 1)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
	}}
	send := func(method, path string, body []byte, user, pass string) int {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, httpsURL+path, bytes.NewReader(body))
		require.NoError(t, err)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := client.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, 401, send("GET", "/healthz", nil, "", ""))
	require.Equal(t, 401, send("POST", "/webhook", fixture(t, "one.json"), "alertmanager", "wrong"))
	require.Equal(t, 200, send("GET", "/healthz", nil, "alertmanager", "am-pass"))
	require.Equal(t, 200, send("POST", "/webhook", fixture(t, "one.json"), "alertmanager", "am-pass"))

	// Plain HTTP to the TLS port is refused by the TLS server.
	resp, err := http.Get(r.url + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)

	// A client that does not trust the certificate cannot connect.
	_, err = (&http.Client{Timeout: 5 * time.Second}).Get(httpsURL + "/healthz")
	require.ErrorContains(t, err, "certificate")
	require.NoError(t, r.stop(t))
}

// TestRunBasicAuthAllowsExposure: with basic_auth_users in the web config every endpoint is
// authenticated, so the daemon may listen beyond loopback without api/webhook credentials.
func TestRunBasicAuthAllowsExposure(t *testing.T) {
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	require.NoError(t, err)
	web := writeFile(t, dir, "web.yml", "basic_auth_users:\n  sre: "+string(hash)+"\n")
	r := startRun(t, Options{ConfigFile: configFile(t, testClusters), WebConfigFile: web, ListenAddress: "0.0.0.0:0"})
	require.NoError(t, r.stop(t))
}
