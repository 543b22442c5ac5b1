package integration

import (
	"os/exec"
	"syscall"
)

// dieWithTest makes the kernel kill a child process when the test process
// dies (a test timeout panics and exits without running Cleanups), so that
// no Caddy or go build outlives the test.
func dieWithTest(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
