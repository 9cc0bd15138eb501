package deploy

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/zmyorg/zmy-responder/internal/config"
)

// k8sObject is the part of a manifest these tests read; Spec and Data stay generic.
type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Spec       yaml.Node         `yaml:"spec"`
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
}

func loadManifests(t *testing.T) map[string]*k8sObject {
	t.Helper()
	var kust struct {
		Resources []string `yaml:"resources"`
	}
	b, err := os.ReadFile("kubernetes/kustomization.yaml")
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, &kust))

	// Every manifest in the directory is a kustomization resource, and every resource exists.
	files, err := filepath.Glob("kubernetes/*.yaml")
	require.NoError(t, err)
	var onDisk []string
	for _, f := range files {
		if base := filepath.Base(f); base != "kustomization.yaml" {
			onDisk = append(onDisk, base)
		}
	}
	require.ElementsMatch(t, onDisk, kust.Resources)

	objs := map[string]*k8sObject{}
	for _, r := range kust.Resources {
		for _, o := range decodeManifests(t, filepath.Join("kubernetes", r)) {
			objs[o.Kind] = o
		}
	}
	return objs
}

// decodeManifests reads every document of a manifest file; each has a kind and a name.
func decodeManifests(t *testing.T, path string) []*k8sObject {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var objs []*k8sObject
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		o := &k8sObject{}
		err := dec.Decode(o)
		if errors.Is(err, io.EOF) {
			return objs
		}
		require.NoError(t, err, path)
		require.NotEmpty(t, o.Kind, path)
		require.NotEmpty(t, o.Metadata.Name, path)
		objs = append(objs, o)
	}
}

type container struct {
	Image string   `yaml:"image"`
	Args  []string `yaml:"args"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	LivenessProbe  probe `yaml:"livenessProbe"`
	ReadinessProbe probe `yaml:"readinessProbe"`
	Security       struct {
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   bool  `yaml:"readOnlyRootFilesystem"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
}

type probe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"`
	} `yaml:"httpGet"`
}

func TestKubernetesDeployment(t *testing.T) {
	objs := loadManifests(t)
	for _, kind := range []string{"Deployment", "Service", "ServiceMonitor", "PrometheusRule", "ConfigMap", "Secret", "PersistentVolumeClaim"} {
		require.Contains(t, objs, kind)
	}

	var spec struct {
		Replicas int `yaml:"replicas"`
		Strategy struct {
			Type string `yaml:"type"`
		} `yaml:"strategy"`
		Template struct {
			Spec struct {
				Security struct {
					RunAsNonRoot bool `yaml:"runAsNonRoot"`
					RunAsUser    int  `yaml:"runAsUser"`
				} `yaml:"securityContext"`
				Containers []container `yaml:"containers"`
				Volumes    []struct {
					Name string `yaml:"name"`
					PVC  *struct {
						ClaimName string `yaml:"claimName"`
					} `yaml:"persistentVolumeClaim"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
	}
	d := objs["Deployment"]
	require.NoError(t, d.Spec.Decode(&spec))
	// One writer of the bbolt journal at a time.
	require.Equal(t, 1, spec.Replicas)
	require.Equal(t, "Recreate", spec.Strategy.Type)
	pod := spec.Template.Spec
	require.True(t, pod.Security.RunAsNonRoot)
	require.NotZero(t, pod.Security.RunAsUser)
	require.Len(t, pod.Containers, 1)
	c := pod.Containers[0]

	ports := map[string]int{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	require.Equal(t, map[string]int{"http": 9095, "grpc": 9096}, ports)
	require.Equal(t, "/-/healthy", c.LivenessProbe.HTTPGet.Path)
	require.Equal(t, "http", c.LivenessProbe.HTTPGet.Port)
	require.Equal(t, "/-/ready", c.ReadinessProbe.HTTPGet.Path)
	require.Equal(t, "http", c.ReadinessProbe.HTTPGet.Port)
	require.NotNil(t, c.Security.AllowPrivilegeEscalation)
	require.False(t, *c.Security.AllowPrivilegeEscalation)
	require.True(t, c.Security.ReadOnlyRootFilesystem)

	// The journal lives on the PVC: --storage.path is where the data volume is mounted.
	args := map[string]string{}
	for _, a := range c.Args {
		k, v, _ := strings.Cut(a, "=")
		args[k] = v
	}
	require.Equal(t, ":9095", args["--web.listen-address"])
	require.Equal(t, ":9096", args["--grpc.listen-address"])
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	require.Equal(t, args["--storage.path"], mounts["data"])
	var claim string
	for _, v := range pod.Volumes {
		if v.Name == "data" && v.PVC != nil {
			claim = v.PVC.ClaimName
		}
	}
	require.Equal(t, objs["PersistentVolumeClaim"].Metadata.Name, claim)

	// The config file the daemon reads is the ConfigMap's key.
	require.Equal(t, "/etc/zmy-responder/zmy-responder.yml", args["--config.file"])
	require.Equal(t, args["--config.file"], mounts["config"])
}

// The Service's name is the job label the ServiceMonitor gives the responder's series, and the
// self-alerts select job="zmy-responder".
func TestKubernetesServiceAndMonitor(t *testing.T) {
	objs := loadManifests(t)
	require.Equal(t, "zmy-responder", objs["Service"].Metadata.Name)
	var svc struct {
		Ports []struct {
			Name       string `yaml:"name"`
			Port       int    `yaml:"port"`
			TargetPort string `yaml:"targetPort"`
		} `yaml:"ports"`
	}
	require.NoError(t, objs["Service"].Spec.Decode(&svc))
	var names []string
	for _, p := range svc.Ports {
		names = append(names, p.Name)
	}
	require.ElementsMatch(t, []string{"http", "grpc"}, names)

	var sm struct {
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Endpoints []struct {
			Port string `yaml:"port"`
			Path string `yaml:"path"`
		} `yaml:"endpoints"`
	}
	require.NoError(t, objs["ServiceMonitor"].Spec.Decode(&sm))
	for k, v := range sm.Selector.MatchLabels {
		require.Equal(t, v, objs["Service"].Metadata.Labels[k], "ServiceMonitor selects the Service")
	}
	require.Len(t, sm.Endpoints, 1)
	require.Equal(t, "http", sm.Endpoints[0].Port)
	require.Equal(t, "/metrics", sm.Endpoints[0].Path)
}

// The ConfigMap's zmy-responder.yml is a valid configuration once the Secret's keys are files.
func TestKubernetesConfigLoads(t *testing.T) {
	objs := loadManifests(t)
	raw, ok := objs["ConfigMap"].Data["zmy-responder.yml"]
	require.True(t, ok)
	secrets := t.TempDir()
	for k, v := range objs["Secret"].StringData {
		require.NoError(t, os.WriteFile(filepath.Join(secrets, k), []byte(v), 0o600))
	}
	const mount = "/etc/zmy-responder/secrets/"
	require.Contains(t, raw, mount)
	path := filepath.Join(t.TempDir(), "zmy-responder.yml")
	require.NoError(t, os.WriteFile(path, []byte(strings.ReplaceAll(raw, mount, secrets+"/")), 0o600))
	cfg, err := config.Load(path)
	require.NoError(t, err)
	require.NotEmpty(t, cfg.Webhook.Auth.BearerTokenFile, "the pod listens beyond loopback: the webhook needs credentials")
	require.NotEmpty(t, cfg.API.Auth.BearerTokenFile, "the pod listens beyond loopback: the API needs credentials")
	require.NotEmpty(t, cfg.Clusters)
	require.True(t, slices.Contains(cfg.Webhook.ClusterLabels, "cluster"))
}

// kubectl's built-in kustomize renders the whole directory (when kubectl is installed).
func TestKubernetesKustomizeBuilds(t *testing.T) {
	kubectl := optionalTool(t, "kubectl")
	out := mustStdout(t, ".", kubectl, "kustomize", "kubernetes")
	for _, kind := range []string{"Deployment", "Service", "ServiceMonitor", "PrometheusRule"} {
		require.Contains(t, out, "kind: "+kind)
	}
}
