package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

// writeCert writes a self-signed certificate and its key into dir as name.crt and name.key.
func writeCert(t *testing.T, dir, name string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, name+".crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, name+".key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600))
}

func loadStorage(t *testing.T, dir, doc string) (*Config, error) {
	t.Helper()
	path := filepath.Join(dir, "zmy-responder.yml")
	require.NoError(t, os.WriteFile(path, []byte(doc), 0o600))
	return Load(path)
}

func TestStorageEtcd(t *testing.T) {
	dir := t.TempDir()
	writeCert(t, dir, "ca")
	writeCert(t, dir, "client")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "etcd-password"), []byte("s3cret\n"), 0o600))
	cfg, err := loadStorage(t, dir, `
storage:
  etcd:
    tls_config:
      ca_file: ca.crt
      cert_file: client.crt
      key_file: client.key
    username: responder
    password_file: etcd-password
    request_timeout: 1s
`)
	require.NoError(t, err)
	e := cfg.Storage.Etcd
	require.Equal(t, filepath.Join(dir, "ca.crt"), e.TLSConfig.CAFile, "paths relative to the config file")
	require.Equal(t, filepath.Join(dir, "client.key"), e.TLSConfig.KeyFile)
	require.Equal(t, filepath.Join(dir, "etcd-password"), e.PasswordFile)
	require.Equal(t, "responder", e.Username)
	require.Equal(t, model.Duration(time.Second), e.RequestTimeout)
	require.Equal(t, DefaultEtcdStorage.DialTimeout, e.DialTimeout, "unset: the default")
	require.True(t, e.TLSEnabled([]string{"http://127.0.0.1:2379"}))

	cfg, err = loadStorage(t, dir, "")
	require.NoError(t, err)
	require.Equal(t, DefaultEtcdStorage, cfg.Storage.Etcd)
	require.False(t, cfg.Storage.Etcd.TLSEnabled([]string{"http://127.0.0.1:2379"}))
	require.True(t, cfg.Storage.Etcd.TLSEnabled([]string{"http://a:2379", "https://b:2379"}))
}

func TestStorageEtcdErrors(t *testing.T) {
	dir := t.TempDir()
	writeCert(t, dir, "client")
	writeCert(t, dir, "other")
	for _, tc := range []struct{ doc, want string }{
		{"storage:\n  etcd:\n    username: responder\n", "line 2: storage.etcd.password_file: is required with username"},
		{"storage:\n  etcd:\n    password_file: p\n", "line 2: storage.etcd.username: is required with password_file"},
		{"storage:\n  etcd:\n    username: r\n    password_file: nope\n", "line 4: storage.etcd.password_file: open " + filepath.Join(dir, "nope")},
		{"storage:\n  etcd:\n    pasword_file: p\n", `line 3: unknown field "pasword_file" in storage.etcd`},
		{"storage:\n  etcd:\n    tls_config: {ca_file: missing.crt}\n", "line 3: storage.etcd.tls_config: unable to read CA cert"},
		{"storage:\n  etcd:\n    tls_config: {cert_file: client.crt, key_file: other.key}\n", "line 3: storage.etcd.tls_config: unable to use specified client cert"},
		{"storage:\n  etcd:\n    tls_config: {cert_file: client.crt}\n", "exactly one of key or key_file must be configured"},
		{"storage:\n  etcd:\n    request_timeout: 0s\n", "line 3: storage.etcd.request_timeout: must be a positive duration"},
	} {
		_, err := loadStorage(t, dir, tc.doc)
		require.ErrorContains(t, err, tc.want, tc.doc)
	}
}
