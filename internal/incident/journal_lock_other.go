//go:build !linux

package incident

// lockHolder cannot tell who holds the lock outside Linux.
func lockHolder(string) int { return 0 }
