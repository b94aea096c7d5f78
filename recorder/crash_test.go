package recorder

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/blackbox-gw/blackbox/recorder/wavcheck"
	"github.com/blackbox-gw/blackbox/store"
	"github.com/blackbox-gw/blackbox/store/jobs"
	"github.com/blackbox-gw/blackbox/store/objects"
)

const crashChildEnv = "BLACKBOX_RECORDER_CRASH_CHILD"

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		if err := crashChild(dir, os.Getenv(crashChildEnv+"_TENANT")); err != nil {
			fmt.Fprintln(os.Stderr, "crash child:", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// crashChild records a tone call until it is killed (or 30 s pass, should
// the parent be gone). It prints "ready ID START_UNIX_NANO" after 1 s.
func crashChild(dir, tenant string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := store.Open(ctx, "sqlite:"+filepath.Join(dir, "bb.db"), store.Options{})
	if err != nil {
		return err
	}
	objs, err := objects.Open(ctx, "file:"+filepath.Join(dir, "objects"), objects.Options{})
	if err != nil {
		return err
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	jc, err := jobs.New(jobs.Options{DB: db, Node: "n1", Logger: quiet}) // never runs: the child only records
	if err != nil {
		return err
	}
	m, err := New(Options{SpoolDir: filepath.Join(dir, "spool"), SyncInterval: 200 * time.Millisecond, Objects: objs, DB: db,
		Jobs: jc, Node: "n1", Logger: quiet})
	if err != nil {
		return err
	}
	go m.Run(ctx)
	var rec *Recording
	for rec == nil {
		if rec, err = m.Start(ctx, Meta{TenantID: tenant, CallID: "killed", Channels: [2]string{"rep", "remote"}}); err != nil {
			if ctx.Err() != nil {
				return err
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	start := time.Now()
	left, right := rec.Stream(Left), rec.Stream(Right)
	ls, rs := newSender(payloadPCMU, 1, 440), newSender(payloadPCMA, 2, 1000)
	next, ready := time.Now(), false
	for ctx.Err() == nil {
		h, p := ls.next()
		left.RTP(h, p, time.Now())
		h, p = rs.next()
		right.RTP(h, p, time.Now())
		if !ready && time.Since(start) > time.Second {
			fmt.Printf("ready %s %d\n", rec.ID(), start.UnixNano())
			ready = true
		}
		next = next.Add(20 * time.Millisecond)
		time.Sleep(time.Until(next))
	}
	return nil
}

// TestKill9Recovery kills a recording process with SIGKILL mid-call; the
// next Run finalises the spool it left, marks it truncated, uploads it and
// records it exactly once, losing at most about SyncInterval of audio.
func TestKill9Recovery(t *testing.T) {
	dir := t.TempDir()
	e := openEnv(t, dir)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, crashChildEnv+"_TENANT="+e.tenantA)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(out).ReadString('\n')
		lines <- l
	}()
	var line string
	select {
	case line = <-lines:
	case <-time.After(20 * time.Second):
		t.Fatal("child never became ready")
	}
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != "ready" {
		t.Fatalf("child said %q", line)
	}
	id := f[1]
	startNS, _ := strconv.ParseInt(f[2], 10, 64)
	time.Sleep(700 * time.Millisecond)
	if err := cmd.Process.Kill(); err != nil { // SIGKILL: no flush, no defer, nothing
		t.Fatal(err)
	}
	alive := time.Since(time.Unix(0, startNS))
	cmd.Wait()

	m := e.manager(t, nil)
	stop := run(t, m)
	row := waitState(t, e.scopeA, id, store.RecordingStored, 15*time.Second)
	if !row.Truncated {
		t.Fatal("a killed recording must be marked truncated")
	}
	t.Logf("process alive for %v after the recording started; recovered %v of audio", alive, row.Duration)
	// Lost: the unsynced tail (<= SyncInterval 200 ms), the reorder delay
	// and writer tick (120 ms), and scheduling slack.
	if row.Duration > alive || row.Duration < alive-600*time.Millisecond {
		t.Fatalf("recovered %v of audio from a process alive %v", row.Duration, alive)
	}
	raw, w := readObject(t, e.objs, row.ObjectKey)
	checkSHA(t, raw, row)
	if s := wavcheck.BlockToneShare(w.Channel(0), SampleRate, 440, 400); s < 0.9 {
		t.Fatalf("left channel tone share %.2f", s)
	}
	if s := wavcheck.BlockToneShare(w.Channel(1), SampleRate, 1000, 400); s < 0.9 {
		t.Fatalf("right channel tone share %.2f", s)
	}
	if metricValue(m.met.recovered) != 1 {
		t.Fatal("recovery not counted once")
	}
	if left, _ := os.ReadDir(e.spool); len(left) != 0 {
		t.Fatalf("spool not cleaned: %v", left)
	}
	stop()
	expectNothingToRecover(t, e, row)
}
