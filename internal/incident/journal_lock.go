package incident

import (
	"errors"
	"fmt"
)

// ErrLocked says another process holds the journal file: two daemons on one --storage.path.
var ErrLocked = errors.New("journal is locked by another process")

// lockedError names the process holding the journal's lock when the OS tells (lockHolder).
func lockedError(path string) error {
	who := "pid unknown"
	if pid := lockHolder(path); pid > 0 {
		who = fmt.Sprintf("pid %d", pid)
	}
	return fmt.Errorf("%w (%s): another zmy-responder is using %s; stop it, or give this one its own --storage.path",
		ErrLocked, who, path)
}
