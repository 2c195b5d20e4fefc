// Package tmpfstest runs a test against a real tmpfs.
//
// Mounting needs root and a mount namespace of its own, so that the mount
// neither leaks into the host nor outlives the test. Run re-executes the
// current test binary under `unshare -m --propagation private`, mounts a
// tmpfs on a temporary directory inside that namespace, and runs only the
// calling test there. Where that is impossible (not root, no unshare, mount
// refused) the test is skipped with the reason.
package tmpfstest

import (
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// envDir names the environment variable that tells the re-executed test
// binary where the tmpfs is mounted.
const envDir = "SECRETFETCH_TEST_TMPFS_DIR"

// mountFailed is the exit status of the shell when mount fails.
const mountFailed = 97

// Run calls fn with a directory on a fresh 16 MiB tmpfs. Call it from a
// top-level test (or a subtest) that does nothing else that is expensive:
// the whole test function runs again in the child process, and only fn sees
// the tmpfs.
func Run(t *testing.T, fn func(t *testing.T, dir string)) {
	t.Helper()
	RunSized(t, 16<<20, fn)
}

// RunSized is Run with a tmpfs of size bytes (rounded up to whole pages by
// the kernel), as the kubelet mounts a memory emptyDir with its sizeLimit.
func RunSized(t *testing.T, size int64, fn func(t *testing.T, dir string)) {
	t.Helper()
	if dir := os.Getenv(envDir); dir != "" {
		fn(t, dir)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("skipping the real-tmpfs part: mounting a tmpfs needs root (unshare -m + mount -t tmpfs)")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skipf("skipping the real-tmpfs part: %v", err)
	}
	dir := t.TempDir()
	parts := strings.Split(t.Name(), "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	cmd := exec.Command(unshare, "-m", "--propagation", "private", "sh", "-c",
		`mount -t tmpfs -o "size=$1,mode=0777" secretfetch-test "$2" || exit 97; shift 2; exec "$@"`,
		"sh", strconv.FormatInt(size, 10), dir, os.Args[0], "-test.run", strings.Join(parts, "/"), "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), envDir+"="+dir)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit) && exit.ExitCode() == mountFailed:
		t.Skipf("skipping the real-tmpfs part: mount -t tmpfs failed:\n%s", out)
	case err != nil && !strings.Contains(string(out), "=== RUN"):
		t.Skipf("skipping the real-tmpfs part: unshare -m failed (%v):\n%s", err, out)
	case err != nil:
		t.Fatalf("on a real tmpfs (child test binary: %v):\n%s", err, out)
	case !strings.Contains(string(out), "--- PASS"):
		t.Fatalf("the child test binary ran no test:\n%s", out)
	default:
		t.Logf("passed on a real tmpfs, in a private mount namespace:\n%s", out)
	}
}
