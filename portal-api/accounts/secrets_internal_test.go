package accounts

import (
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// However many password checks arrive at once, at most cap(argonSlots)
// argon2id computations (19 MiB each) run; the others wait their turn and
// then complete.
func TestPasswordHashingIsBounded(t *testing.T) {
	const hash = "$argon2id$v=19$m=8,t=1,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	var inside atomic.Int32
	release := make(chan struct{})
	real := argonKey
	argonKey = func(pw, salt []byte, tm, m uint32, p uint8, n uint32) []byte {
		inside.Add(1)
		<-release
		inside.Add(-1)
		return real(pw, salt, tm, m, p, n)
	}
	defer func() { argonKey = real }()

	slots, callers := cap(argonSlots), 3*cap(argonSlots)
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() { verifyPassword(hash, "a guess") })
	}
	// Wait until every caller is either computing or queued for a slot.
	for deadline := time.Now().Add(10 * time.Second); ; {
		n := int(inside.Load())
		if n > slots {
			close(release)
			t.Fatalf("%d argon2id computations ran at once for %d callers, want at most %d", n, callers, slots)
		}
		if n == slots && queued() == callers-slots {
			break
		}
		if time.Now().After(deadline) {
			close(release)
			t.Fatalf("after 10 s: %d computing, %d queued, want %d and %d", n, queued(), slots, callers-slots)
		}
		runtime.Gosched()
	}
	close(release)
	wg.Wait()
	if n := inside.Load(); n != 0 {
		t.Fatalf("%d computations still running", n)
	}
}

// queued is how many goroutines wait for an argon2id slot.
func queued() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "[chan send") && strings.Contains(g, "accounts.idKey(") {
			n++
		}
	}
	return n
}
