// Package deploy holds the files that run zmy-responder next to Prometheus and Alertmanager:
// alertmanager.yml, prometheus.yml, the systemd unit, the Dockerfile and the Kubernetes
// manifests (kubernetes/, whose PrometheusRule kubernetes/gen generates from rules/). It has no
// code; its tests check those files with the real tools and against each other.
package deploy
