//go:build unix

package api_test

import (
	"os"
	"slices"
	"syscall"
)

// In a fuzzing worker (go test -fuzz), file descriptors 3, 4 and 5 are the
// worker's pipes to the fuzzing engine and its shared memory, and they are
// not close-on-exec: every process the worker starts inherits them. The
// fuzz targets here start a PostgreSQL server, which runs on as a daemon;
// if the engine stops a worker (after a slow minimization, say) before the
// worker stops its server, the server keeps the engine's pipe open and the
// engine waits for it forever. Marking them close-on-exec keeps them to the
// worker.
func init() {
	if slices.Contains(os.Args[1:], "-test.fuzzworker") {
		for fd := 3; fd <= 5; fd++ {
			syscall.CloseOnExec(fd)
		}
	}
}
