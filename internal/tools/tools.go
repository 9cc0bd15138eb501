//go:build tools

// Package tools pins the dependencies the README lists ("Dependencies, and why") so that `go mod tidy`
// keeps them even before every one of them is imported by product code.
package tools

import (
	_ "github.com/alecthomas/kingpin/v2"
	_ "github.com/labstack/echo/v4"
	_ "github.com/prometheus/alertmanager/api/v2/client"
	_ "github.com/prometheus/alertmanager/template"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/common/expfmt"
	_ "github.com/prometheus/common/promslog"
	_ "github.com/prometheus/exporter-toolkit/web"
	_ "github.com/prometheus/prometheus/promql/parser"
	_ "github.com/redis/go-redis/v9"
	_ "github.com/sony/gobreaker/v2"
	_ "github.com/stretchr/testify/require"
	_ "go.etcd.io/bbolt"
	_ "go.etcd.io/etcd/client/v3"
	_ "go.etcd.io/etcd/server/v3/embed"
	_ "golang.org/x/sync/errgroup"
	_ "google.golang.org/grpc"
	_ "gopkg.in/yaml.v3"
)
