package testenv

import (
	"syscall"
	"time"

	"github.com/zmyorg/zmy-responder/internal/stack"
)

// CPU is user plus system CPU time: of this process (Self), and of its children that have
// exited and been waited for (Children), which is where the zmyctl processes a driver ran end
// up. Benchmarks report its change per operation to say where a latency went.
func CPU() (self, children time.Duration) {
	return rusage(syscall.RUSAGE_SELF), rusage(syscall.RUSAGE_CHILDREN)
}

func rusage(who int) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// CPU is the running simulator's user plus system CPU time so far (10 ms resolution).
func (s *Sim) CPU() (time.Duration, error) {
	return stack.ProcessCPU(s.cmd.Process.Pid)
}
