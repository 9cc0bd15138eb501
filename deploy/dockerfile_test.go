package deploy

import (
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// dockerInstructions returns the Dockerfile's instructions, continuation lines joined.
func dockerInstructions(t *testing.T) [][2]string {
	t.Helper()
	b, err := os.ReadFile("Dockerfile")
	require.NoError(t, err)
	var out [][2]string
	var cur string
	for _, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		if cur == "" && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		cur += " " + strings.TrimSuffix(trimmed, "\\")
		if strings.HasSuffix(trimmed, "\\") {
			continue
		}
		f := strings.Fields(cur)
		out = append(out, [2]string{strings.ToUpper(f[0]), strings.Join(f[1:], " ")})
		cur = ""
	}
	return out
}

// No Docker daemon here: check what the image promises from the Dockerfile itself.
func TestDockerfile(t *testing.T) {
	var froms []string
	var user string
	var exposed []string
	var build string
	for _, in := range dockerInstructions(t) {
		switch in[0] {
		case "FROM":
			froms = append(froms, in[1])
		case "USER":
			user = in[1]
		case "EXPOSE":
			exposed = append(exposed, strings.Fields(in[1])...)
		case "RUN":
			if strings.Contains(in[1], "go build") {
				build = in[1]
			}
		}
	}
	require.GreaterOrEqual(t, len(froms), 2, "multi-stage")
	require.Regexp(t, `^golang:\S+ AS build$`, froms[0])
	final := froms[len(froms)-1]
	require.Regexp(t, `^(scratch|gcr\.io/distroless/static\S*)$`, final, "a static base without a shell")

	// The builder's Go is the one go.mod asks for.
	gomod, err := os.ReadFile("../go.mod")
	require.NoError(t, err)
	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	require.NotNil(t, goVersion)
	require.True(t, strings.HasPrefix(froms[0], "golang:"+string(goVersion[1])), "builder %s for go %s", froms[0], goVersion[1])

	require.Contains(t, build, "CGO_ENABLED=0", "a static binary")
	require.Contains(t, build, "./cmd/zmy-responder")
	for _, f := range strings.Fields(build) {
		if strings.HasPrefix(f, "./cmd/") {
			_, err := os.Stat("../" + f)
			require.NoError(t, err, "built package %s", f)
		}
	}

	uid, _, _ := strings.Cut(user, ":")
	n, err := strconv.Atoi(uid)
	require.NoError(t, err, "USER %q must be numeric for runAsNonRoot", user)
	require.NotZero(t, n, "non-root USER")
	require.ElementsMatch(t, []string{"9095", "9096"}, exposed)
}

// The dependency graph builds without cgo: no package the responder needs is excluded entirely
// by CGO_ENABLED=0. (deploy/check.sh does the full static build and checks the ELF.)
func TestBuildsWithoutCgo(t *testing.T) {
	goBin, err := exec.LookPath("go")
	require.NoError(t, err)
	out, err := runToolEnv(t, "..", []string{"CGO_ENABLED=0"}, goBin, "list", "-e", "-deps",
		"-f", "{{if .Error}}{{.ImportPath}}: {{.Error}}{{end}}", "./cmd/zmy-responder", "./cmd/zmysim")
	require.NoError(t, err, out)
	require.Empty(t, strings.TrimSpace(out), "packages that do not build with CGO_ENABLED=0")
}
