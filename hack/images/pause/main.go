// Command pause is the local cluster's pod sandbox image (containerd's
// sandbox_image): it holds the pod's namespaces open and does nothing else.
// It blocks until SIGTERM or SIGINT and then exits 0. As PID 1 of a pod that
// shares its process namespace, it also reaps orphaned children, as the
// upstream pause does.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		reap()
	}
}

// reap collects every exited child without blocking.
func reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
