package incident

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// lockHolder returns the pid holding a flock(2) lock on path, read from /proc/locks (bbolt
// locks its file with flock), or 0 when it cannot tell: another pid namespace shows 0 there,
// and some file systems report another device than stat does (then a unique inode decides).
func lockHolder(path string) int {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0
	}
	locks, err := os.ReadFile("/proc/locks")
	if err != nil {
		return 0
	}
	dev := uint64(st.Dev)
	major := (dev>>8)&0xfff | (dev>>32)&^0xfff
	minor := dev&0xff | (dev>>12)&^0xff
	exact := fmt.Sprintf("%02x:%02x:%d", major, minor, st.Ino)
	inoSuffix := ":" + strconv.FormatUint(uint64(st.Ino), 10)
	pid, byInode := 0, map[int]bool{}
	sc := bufio.NewScanner(bytes.NewReader(locks))
	for sc.Scan() {
		// "1: FLOCK  ADVISORY  WRITE 14589 fe:00:9977928 0 EOF"; waiters have "->" after the
		// ordinal and hold nothing.
		f := strings.Fields(sc.Text())
		if len(f) < 6 || f[1] != "FLOCK" {
			continue
		}
		p, err := strconv.Atoi(f[4])
		if err != nil {
			continue
		}
		switch {
		case f[5] == exact:
			return p
		case strings.HasSuffix(f[5], inoSuffix):
			byInode[p] = true
			pid = p
		}
	}
	if len(byInode) == 1 {
		return pid
	}
	return 0
}
