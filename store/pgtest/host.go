package pgtest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
)

// EnvBinDir names a directory holding initdb and postgres; it overrides the
// search.
const EnvBinDir = "BLACKBOX_PG_BINDIR"

// ErrNoBinaries means no Postgres server binaries were found.
var ErrNoBinaries = errors.New("postgres server binaries (initdb, postgres) not found: install postgresql-15 (.ci/run does) or set " + EnvBinDir)

// BinDir finds the server binaries: $BLACKBOX_PG_BINDIR, then the newest
// /usr/lib/postgresql/*/bin, then initdb on PATH.
func BinDir() (string, error) {
	if d := os.Getenv(EnvBinDir); d != "" {
		if hasServer(d) {
			return d, nil
		}
		return "", fmt.Errorf("%s=%s: %w", EnvBinDir, d, ErrNoBinaries)
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return major(dirs[i]) > major(dirs[j]) })
	for _, d := range dirs {
		if hasServer(d) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil && hasServer(filepath.Dir(p)) {
		return filepath.Dir(p), nil
	}
	return "", ErrNoBinaries
}

func major(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func hasServer(dir string) bool {
	for _, name := range []string{"initdb", "postgres"} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Mode()&0o111 == 0 {
			return false
		}
	}
	return true
}

// serverCredential is who initdb and postgres run as. Both refuse to run as
// root, so under root (CI containers) they run as the unprivileged postgres
// user the Debian package creates; otherwise as ourselves (nil).
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("pgtest: running as root and there is no postgres user to run the server as: %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("pgtest: postgres user has odd ids %s:%s", u.Uid, u.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
}

// tempBase is where the cluster's temp dir goes. When the server runs as
// another user every ancestor must be searchable by it, and the socket path
// must stay under the kernel's ~107-byte limit: fall back to /tmp otherwise.
func tempBase(cred *syscall.Credential) string {
	base := os.TempDir()
	if len(base) > 60 {
		return "/tmp"
	}
	if cred == nil {
		return base
	}
	for d := base; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return "/tmp"
		}
		if d == filepath.Dir(d) {
			return base
		}
	}
}

// chown hands paths to the server's user (no-op when not root).
func (s *Server) chown(paths ...string) error {
	if s.cred == nil {
		return nil
	}
	for _, p := range paths {
		if err := os.Chown(p, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			return fmt.Errorf("pgtest: chown %s: %w", p, err)
		}
	}
	return nil
}
