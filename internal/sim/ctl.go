package sim

import (
	"context"
	"io"
	"os"

	"github.com/zmyorg/zmy-responder/internal/simctl"
)

// RunCtl is `zmysim ctl --endpoint URL <args…>` on behalf of $ZMY_ACTOR (see internal/simctl,
// which the lean `zmysimctl` binary shares).
func RunCtl(ctx context.Context, endpoint string, args []string, stdout, stderr io.Writer) int {
	return simctl.Run(ctx, endpoint, os.Getenv(simctl.ActorEnv), args, stdout, stderr)
}
