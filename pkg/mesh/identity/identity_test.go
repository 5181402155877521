package identity

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/veneermesh/veneer/pkg/mesh/identity/testca"
)

func TestFilesFollowRotation(t *testing.T) {
	dir := t.TempDir()
	ca := testca.New(t, "veneer.test")
	ca.WriteDir(t, dir, "spiffe://veneer.test/ns/shop/sa/web", time.Hour)
	reg := prometheus.NewRegistry()
	src, err := FromFiles(context.Background(), dir, 10*time.Millisecond, reg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	first, err := src.Current()
	if err != nil {
		t.Fatal(err)
	}
	if got := first.ID.String(); got != "spiffe://veneer.test/ns/shop/sa/web" {
		t.Fatalf("ID %s", got)
	}
	if left := value(t, reg, "veneer_svid_expiry_seconds"); left < 3500 || left > 3600 {
		t.Errorf("veneer_svid_expiry_seconds = %v, want about 3600", left)
	}

	// A half-written set (the key of another SVID) keeps the last good one.
	_, otherKey := ca.SVID(t, "spiffe://veneer.test/ns/shop/sa/web", time.Hour)
	os.WriteFile(filepath.Join(dir, KeyFile), otherKey, 0o600)
	time.Sleep(50 * time.Millisecond)
	if id, err := src.Current(); err != nil || id != first {
		t.Fatalf("after a bad set: %v, %v; want the first SVID kept", id, err)
	}

	ca.WriteDir(t, dir, "spiffe://veneer.test/ns/shop/sa/web", 2*time.Hour)
	deadline := time.Now().Add(2 * time.Second)
	for {
		id, _ := src.Current()
		if id != first && id != nil {
			if id.Serial() == first.Serial() {
				t.Fatal("rotated, same serial")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the new SVID was not picked up")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := value(t, reg, "veneer_svid_updates_total"); n != 2 {
		t.Errorf("veneer_svid_updates_total = %v, want 2", n)
	}
}

func TestExpiredIsRefused(t *testing.T) {
	dir := t.TempDir()
	testca.New(t, "veneer.test").WriteDir(t, dir, "spiffe://veneer.test/a", time.Hour)
	src, err := FromFiles(context.Background(), dir, time.Hour, prometheus.NewRegistry(), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	src.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	if _, err := src.Current(); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("an expired SVID: %v, want an error saying it expired", err)
	}
	if src.Ready() {
		t.Error("ready with an expired SVID")
	}
}

func TestFilesErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := FromFiles(context.Background(), dir, time.Second, prometheus.NewRegistry(), zerolog.Nop()); err == nil || !strings.Contains(err.Error(), "tls.crt") {
		t.Errorf("an empty dir: %v, want an error naming tls.crt", err)
	}
	ca := testca.New(t, "veneer.test")
	ca.WriteDir(t, dir, "spiffe://veneer.test/a", time.Hour)
	os.WriteFile(filepath.Join(dir, BundleFile), testca.New(t, "other.test").BundlePEM()[:40], 0o600)
	if _, err := FromFiles(context.Background(), dir, time.Second, prometheus.NewRegistry(), zerolog.Nop()); err == nil || !strings.Contains(err.Error(), "ca.crt") {
		t.Errorf("a broken bundle: %v, want an error naming ca.crt", err)
	}
}

func TestWorkloadAPIAddress(t *testing.T) {
	for _, bad := range []string{"", "tcp://", "http://x"} {
		if _, err := FromWorkloadAPI(context.Background(), bad, prometheus.NewRegistry(), zerolog.Nop()); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	src, err := FromWorkloadAPI(context.Background(), filepath.Join(t.TempDir(), "none.sock"), prometheus.NewRegistry(), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if _, err := src.Current(); err == nil || src.Ready() {
		t.Error("ready with no agent behind the socket")
	}
}

func TestPattern(t *testing.T) {
	id := spiffeid.RequireFromString("spiffe://td/ns/shop/sa/web")
	for _, tc := range []struct {
		p    string
		want bool
	}{
		{"spiffe://td/ns/shop/sa/web", true},
		{"spiffe://td/ns/shop/sa/we", false},
		{"spiffe://td/ns/shop/*", true},
		{"spiffe://td/ns/sho/*", false},
		{"spiffe://td/*", true},
		{"spiffe://other/*", false},
		{"*", true},
	} {
		p, err := ParsePattern(tc.p)
		if err != nil {
			t.Fatalf("%s: %v", tc.p, err)
		}
		if p.Matches(id) != tc.want {
			t.Errorf("%s matches %s: %v", tc.p, id, !tc.want)
		}
		if p.String() != tc.p {
			t.Errorf("%s written as %s", tc.p, p)
		}
	}
	for _, bad := range []string{"", "web", "spiffe://td/ns/*/sa/web", "spiffe://td/ns/shop*", "http://td/x", "spiffe://TD/x"} {
		if _, err := ParsePattern(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	if p, _ := ParsePattern("*"); p.MatchesString("") {
		t.Error("* matches no principal (plaintext)")
	}
}

// value is the one sample of metric name in reg.
func value(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
