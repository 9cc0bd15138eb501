package deploy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/zmyorg/zmy-responder/internal/config"
)

const haDir = "kubernetes-ha"

// haKustomization is kubernetes-ha/kustomization.yaml.
type haKustomization struct {
	Namespace string   `yaml:"namespace"`
	Resources []string `yaml:"resources"`
	Patches   []struct {
		Path  string `yaml:"path"`
		Patch string `yaml:"patch"`
	} `yaml:"patches"`
}

// loadHA reads the overlay: its own manifests by kind (and Service by name), its kustomization,
// and checks every manifest in the directory is a resource or a patch of it.
func loadHA(t *testing.T) (haKustomization, map[string]*k8sObject) {
	t.Helper()
	var kust haKustomization
	b, err := os.ReadFile(filepath.Join(haDir, "kustomization.yaml"))
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, &kust))
	require.Contains(t, kust.Resources, "../kubernetes", "the overlay builds on the single-replica manifests")

	listed := map[string]bool{}
	for _, r := range kust.Resources {
		listed[r] = true
	}
	for _, p := range kust.Patches {
		if p.Path != "" {
			listed[p.Path] = true
		}
	}
	files, err := filepath.Glob(filepath.Join(haDir, "*.yaml"))
	require.NoError(t, err)
	objs := map[string]*k8sObject{}
	for _, f := range files {
		base := filepath.Base(f)
		if base == "kustomization.yaml" {
			continue
		}
		require.True(t, listed[base], "%s is neither a resource nor a patch of the overlay", base)
		for _, o := range decodeManifests(t, f) {
			key := o.Kind
			if o.Kind == "Service" {
				key += "/" + o.Metadata.Name
			}
			objs[key] = o
		}
	}
	return kust, objs
}

type haPodSpec struct {
	TerminationGracePeriodSeconds int `yaml:"terminationGracePeriodSeconds"`
	Affinity                      struct {
		PodAntiAffinity struct {
			Required []struct {
				TopologyKey   string `yaml:"topologyKey"`
				LabelSelector struct {
					MatchLabels map[string]string `yaml:"matchLabels"`
				} `yaml:"labelSelector"`
			} `yaml:"requiredDuringSchedulingIgnoredDuringExecution"`
		} `yaml:"podAntiAffinity"`
	} `yaml:"affinity"`
	Containers []struct {
		container `yaml:",inline"`
		Env       []struct {
			Name      string `yaml:"name"`
			ValueFrom struct {
				FieldRef struct {
					FieldPath string `yaml:"fieldPath"`
				} `yaml:"fieldRef"`
			} `yaml:"valueFrom"`
		} `yaml:"env"`
	} `yaml:"containers"`
	Volumes []struct {
		Name   string `yaml:"name"`
		Secret *struct {
			SecretName string `yaml:"secretName"`
		} `yaml:"secret"`
		ConfigMap *struct {
			Name string `yaml:"name"`
		} `yaml:"configMap"`
		PVC any `yaml:"persistentVolumeClaim"`
	} `yaml:"volumes"`
}

type haStatefulSet struct {
	Replicas    int    `yaml:"replicas"`
	ServiceName string `yaml:"serviceName"`
	Selector    struct {
		MatchLabels map[string]string `yaml:"matchLabels"`
	} `yaml:"selector"`
	Template struct {
		Metadata struct {
			Labels map[string]string `yaml:"labels"`
		} `yaml:"metadata"`
		Spec haPodSpec `yaml:"spec"`
	} `yaml:"template"`
}

func selects(t *testing.T, selector, labels map[string]string, what string) {
	t.Helper()
	require.NotEmpty(t, selector, what)
	for k, v := range selector {
		require.Equal(t, v, labels[k], "%s selects the replicas' pods (%s)", what, k)
	}
}

// haArgs is the container's flags as a map.
func haArgs(args []string) map[string]string {
	m := map[string]string{}
	for _, a := range args {
		k, v, _ := strings.Cut(a, "=")
		m[k] = v
	}
	return m
}

// Three replicas on etcd: a StatefulSet whose pod name is --ha.replica, spread one per node,
// at most one disrupted at a time, ready when the store answers, with the etcd credentials
// mounted where the config names them; the base's Deployment and journal volume are removed.
func TestKubernetesHA(t *testing.T) {
	kust, objs := loadHA(t)
	base := loadManifests(t)
	for _, kind := range []string{"StatefulSet", "PodDisruptionBudget", "ConfigMap", "Secret", "Service/zmy-responder-peers"} {
		require.Contains(t, objs, kind)
	}

	// The patches delete exactly the base's single-replica Deployment and its PVC.
	deleted := map[string]string{}
	for _, p := range kust.Patches {
		if p.Patch == "" {
			continue
		}
		var o k8sObject
		require.NoError(t, yaml.Unmarshal([]byte(p.Patch), &o))
		require.Contains(t, p.Patch, "$patch: delete")
		deleted[o.Kind] = o.Metadata.Name
	}
	require.Equal(t, map[string]string{
		"Deployment":            base["Deployment"].Metadata.Name,
		"PersistentVolumeClaim": base["PersistentVolumeClaim"].Metadata.Name,
	}, deleted)

	var sts haStatefulSet
	require.NoError(t, objs["StatefulSet"].Spec.Decode(&sts))
	require.Equal(t, 3, sts.Replicas)
	pod := sts.Template.Spec
	labels := sts.Template.Metadata.Labels
	selects(t, sts.Selector.MatchLabels, labels, "the StatefulSet")

	// The base Service (job="zmy-responder" for the rules) and the headless peers Service both
	// select the replicas; the peers Service gives each pod its DNS name.
	var svc struct {
		ClusterIP string            `yaml:"clusterIP"`
		Selector  map[string]string `yaml:"selector"`
	}
	require.NoError(t, base["Service"].Spec.Decode(&svc))
	selects(t, svc.Selector, labels, "the base Service")
	peers := objs["Service/zmy-responder-peers"]
	require.Equal(t, peers.Metadata.Name, sts.ServiceName)
	require.NoError(t, peers.Spec.Decode(&svc))
	require.Equal(t, "None", svc.ClusterIP, "headless: one DNS name per replica")
	selects(t, svc.Selector, labels, "the peers Service")
	// The ServiceMonitor scrapes each replica once: it selects the base Service, not the peers.
	var sm struct {
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
	}
	require.NoError(t, base["ServiceMonitor"].Spec.Decode(&sm))
	matchesPeers := true
	for k, v := range sm.Selector.MatchLabels {
		matchesPeers = matchesPeers && peers.Metadata.Labels[k] == v
	}
	require.False(t, matchesPeers, "the ServiceMonitor must not scrape the replicas twice")

	var pdb struct {
		MinAvailable int `yaml:"minAvailable"`
		Selector     struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
	}
	require.NoError(t, objs["PodDisruptionBudget"].Spec.Decode(&pdb))
	selects(t, pdb.Selector.MatchLabels, labels, "the PodDisruptionBudget")
	require.Equal(t, sts.Replicas-1, pdb.MinAvailable, "one replica disrupted at a time")

	anti := pod.Affinity.PodAntiAffinity.Required
	require.Len(t, anti, 1)
	require.Equal(t, "kubernetes.io/hostname", anti[0].TopologyKey)
	selects(t, anti[0].LabelSelector.MatchLabels, labels, "the anti-affinity")

	require.Len(t, pod.Containers, 1)
	c := pod.Containers[0]
	require.Equal(t, "/-/ready", c.ReadinessProbe.HTTPGet.Path)
	require.Equal(t, "http", c.ReadinessProbe.HTTPGet.Port)
	require.Equal(t, "/-/healthy", c.LivenessProbe.HTTPGet.Path)
	require.True(t, c.Security.ReadOnlyRootFilesystem)
	args := haArgs(c.Args)
	require.Equal(t, "etcd", args["--storage.backend"])
	require.NotContains(t, args, "--storage.path", "nothing is kept on the pod")
	endpoints := strings.Split(args["--storage.etcd.endpoints"], ",")
	require.GreaterOrEqual(t, len(endpoints), 3, "an etcd cluster that survives a member's loss")
	for _, ep := range endpoints {
		u, err := url.Parse(ep)
		require.NoError(t, err)
		require.Equal(t, "https", u.Scheme, "etcd over TLS with the client certificate")
		require.NotEmpty(t, u.Host)
	}
	require.True(t, strings.HasPrefix(args["--storage.etcd.prefix"], "/"))
	lease, err := time.ParseDuration(args["--ha.lease-ttl"])
	require.NoError(t, err)
	require.Positive(t, lease)
	// --ha.replica is the pod's name, from the downward API.
	require.Equal(t, "$(POD_NAME)", args["--ha.replica"])
	var podName string
	for _, e := range c.Env {
		if e.Name == "POD_NAME" {
			podName = e.ValueFrom.FieldRef.FieldPath
		}
	}
	require.Equal(t, "metadata.name", podName)

	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	secrets := map[string]string{} // volume → Secret
	for _, v := range pod.Volumes {
		require.Nil(t, v.PVC, "no volume claim: the incidents are in etcd")
		if v.Secret != nil {
			secrets[v.Name] = v.Secret.SecretName
		}
		if v.ConfigMap != nil {
			require.Equal(t, objs["ConfigMap"].Metadata.Name, v.ConfigMap.Name)
		}
	}
	require.Equal(t, objs["Secret"].Metadata.Name, secrets["etcd"])
	require.Equal(t, base["Secret"].Metadata.Name, secrets["tokens"])
	require.Equal(t, args["--config.file"], mounts["config"])

	// Every etcd credential the config names is a key of the etcd Secret where it is mounted.
	var cfg struct {
		Storage struct {
			Etcd struct {
				TLS struct {
					CA   string `yaml:"ca_file"`
					Cert string `yaml:"cert_file"`
					Key  string `yaml:"key_file"`
				} `yaml:"tls_config"`
				Username     string `yaml:"username"`
				PasswordFile string `yaml:"password_file"`
			} `yaml:"etcd"`
		} `yaml:"storage"`
	}
	require.NoError(t, yaml.Unmarshal([]byte(objs["ConfigMap"].Data["zmy-responder.yml"]), &cfg))
	e := cfg.Storage.Etcd
	require.NotEmpty(t, e.Username)
	for _, f := range []string{e.TLS.CA, e.TLS.Cert, e.TLS.Key, e.PasswordFile} {
		require.Equal(t, mounts["etcd"], filepath.Dir(f), "%s is in the etcd Secret's mount", f)
		require.Contains(t, objs["Secret"].StringData, filepath.Base(f))
	}
}

// The replicas' config is the single replica's plus the storage section: the clusters, tokens and
// Alertmanager are edited in both, and this keeps them from drifting apart.
func TestKubernetesHAConfigIsBasePlusStorage(t *testing.T) {
	_, objs := loadHA(t)
	base := loadManifests(t)
	var ha, single map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(objs["ConfigMap"].Data["zmy-responder.yml"]), &ha))
	require.NoError(t, yaml.Unmarshal([]byte(base["ConfigMap"].Data["zmy-responder.yml"]), &single))
	require.Contains(t, ha, "storage")
	require.NotContains(t, single, "storage")
	delete(ha, "storage")
	require.Equal(t, single, ha, "kubernetes-ha/configmap.yaml differs from kubernetes/configmap.yaml beyond storage")
	require.Equal(t, base["ConfigMap"].Metadata.Name, objs["ConfigMap"].Metadata.Name, "the patch replaces the base's ConfigMap")
}

// The replicas' config loads as the daemon loads it, once both Secrets' keys are files (the
// etcd ones a real CA, client certificate and key: loading reads and checks them).
func TestKubernetesHAConfigLoads(t *testing.T) {
	_, objs := loadHA(t)
	base := loadManifests(t)
	raw := objs["ConfigMap"].Data["zmy-responder.yml"]
	tokens, etcd := t.TempDir(), t.TempDir()
	for k, v := range base["Secret"].StringData {
		require.NoError(t, os.WriteFile(filepath.Join(tokens, k), []byte(v), 0o600))
	}
	pems := clientPKI(t)
	for k, v := range objs["Secret"].StringData {
		if p, ok := pems[k]; ok {
			v = p
		}
		require.NoError(t, os.WriteFile(filepath.Join(etcd, k), []byte(v), 0o600))
	}
	raw = strings.ReplaceAll(raw, "/etc/zmy-responder/secrets/", tokens+"/")
	raw = strings.ReplaceAll(raw, "/etc/zmy-responder/etcd/", etcd+"/")
	path := filepath.Join(t.TempDir(), "zmy-responder.yml")
	require.NoError(t, os.WriteFile(path, []byte(raw), 0o600))
	cfg, err := config.Load(path)
	require.NoError(t, err)
	require.Equal(t, "zmy-responder", cfg.Storage.Etcd.Username)
	require.Equal(t, filepath.Join(etcd, "ca.crt"), cfg.Storage.Etcd.TLSConfig.CAFile)
	require.True(t, cfg.Storage.Etcd.TLSEnabled(nil))
}

// clientPKI is a CA and a client certificate and key it signed, PEM-encoded under the etcd
// Secret's key names.
func clientPKI(t *testing.T) map[string]string {
	t.Helper()
	p := newPKI(t)
	return map[string]string{"ca.crt": p.caPEM, "tls.crt": p.clientCert, "tls.key": p.clientKey}
}

// pki is a test CA with a server certificate for 127.0.0.1 and a client certificate
// (CN zmy-responder), all PEM.
type pki struct {
	caPEM, serverCert, serverKey, clientCert, clientKey string
}

func newPKI(t *testing.T) pki {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test etcd CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	enc := func(typ string, der []byte) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
	}
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage, ips ...net.IP) (cert, key string) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, KeyUsage: x509.KeyUsageDigitalSignature, IPAddresses: ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		require.NoError(t, err)
		kder, err := x509.MarshalECPrivateKey(k)
		require.NoError(t, err)
		return enc("CERTIFICATE", der), enc("EC PRIVATE KEY", kder)
	}
	p := pki{caPEM: enc("CERTIFICATE", caDER)}
	p.serverCert, p.serverKey = leaf(2, "etcd", x509.ExtKeyUsageServerAuth, net.IPv4(127, 0, 0, 1))
	p.clientCert, p.clientKey = leaf(3, "zmy-responder", x509.ExtKeyUsageClientAuth)
	return p
}

// kubectl's built-in kustomize renders the overlay (when kubectl is installed): the replicas,
// their budget and peers Service, one ConfigMap (with the storage section), no Deployment and
// no volume claim left from the base.
func TestKubernetesHAKustomizeBuilds(t *testing.T) {
	kubectl := optionalTool(t, "kubectl")
	out := mustStdout(t, ".", kubectl, "kustomize", haDir)
	kinds := map[string]int{}
	var configs []string
	dec := yaml.NewDecoder(strings.NewReader(out))
	for {
		var o k8sObject
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		kinds[o.Kind]++
		if o.Kind == "ConfigMap" {
			configs = append(configs, o.Data["zmy-responder.yml"])
		}
	}
	require.Equal(t, 1, kinds["StatefulSet"])
	require.Equal(t, 1, kinds["PodDisruptionBudget"])
	require.Equal(t, 2, kinds["Service"])
	require.Equal(t, 2, kinds["Secret"])
	require.Zero(t, kinds["Deployment"])
	require.Zero(t, kinds["PersistentVolumeClaim"])
	require.Len(t, configs, 1)
	require.Contains(t, configs[0], "storage:")
	for _, kind := range []string{"ServiceMonitor", "PrometheusRule", "Namespace"} {
		require.Equal(t, 1, kinds[kind], kind)
	}
}
