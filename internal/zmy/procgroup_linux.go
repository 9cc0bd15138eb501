package zmy

import (
	"errors"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"
)

// startInGroup makes the child the leader of a new process group, and makes cancellation kill
// that whole group: zmyctl may be a wrapper (ssh, a shell script) whose children would otherwise
// outlive it and keep our pipes open. The child also dies with the responder (parent-death
// signal): a command in flight when the daemon is killed must not land after the restarted
// daemon has read the node's state. A wrapper that forks should exec zmyctl, or pass the signal
// on, for the same guarantee.
func startInGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error {
		return killGroup(cmd.Process.Pid)
	}
}

// killGroup SIGKILLs every process in the group led by pid; a group already gone is not an error.
func killGroup(pid int) error {
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

// awaitExitAndKillGroup blocks until the group leader pid has exited, without reaping it, then
// kills what is left of its group. Doing it while the leader is an unreaped zombie guarantees the
// group id cannot have been reused by an unrelated process. If waiting fails the caller's Wait
// (plus WaitDelay) still bounds everything.
func awaitExitAndKillGroup(pid int) {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return
		}
		break
	}
	_ = killGroup(pid)
}

// isTextBusy reports a start that failed because the executable is open for writing (ETXTBSY).
func isTextBusy(err error) bool { return errors.Is(err, syscall.ETXTBSY) }
