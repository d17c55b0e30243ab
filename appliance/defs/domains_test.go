package defs

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"fmt"
	"strings"
	"testing"
)

// FuzzDomainLines checks the bundle loader's allocation-free domain path
// against ParseList + Compile: the same lines are accepted or refused,
// and the same names match with the same metadata.
func FuzzDomainLines(f *testing.F) {
	f.Add("evil.example 3 c2 block\n# c\n\nX.Example. low y\nevil.example 1 again detect\n")
	f.Add("a..b 1 x\n")
	f.Add("a.b 4 x\n")
	f.Add("a.b 1 x BLOCK\n")
	f.Add("a.b 1\n")
	f.Add("a.b 1 x y z\n")
	f.Add("a/b.example 1 x\n")
	f.Add("Ünï.example 2 x\n")
	f.Add("a.example\u00a01 x\n")
	f.Add("a.example 1 x\u00a0block\n")
	f.Add(strings.Repeat("a", 64) + ".example 1 x\n")
	f.Add(strings.Repeat("a.", 127) + "b 1 x\n")
	f.Add("a.b 1 " + strings.Repeat("l", 129) + "\n")
	f.Add("a.b\t1\vx\fblock\r\n")
	f.Add("evil.example. 1 x#c\n")
	f.Fuzz(func(t *testing.T, list string) {
		entries, perr := ParseList(ListDomains, strings.NewReader(list))
		var want *Set
		if perr == nil {
			var err error
			if want, err = Compile(1, t0, Lists{ListDomains: entries}, DefaultPortScan); err != nil {
				t.Fatal(err)
			}
		}
		got := newSet(1, t0, DefaultPortScan, 0)
		var ferr error
		sc := bufio.NewScanner(strings.NewReader(list))
		sc.Buffer(make([]byte, 0, 64<<10), 64<<10)
		for n := 1; sc.Scan() && ferr == nil; n++ {
			ferr = got.addDomainLine(sc.Bytes(), n)
		}
		if ferr == nil {
			ferr = sc.Err()
		}
		got.finish()
		if (perr == nil) != (ferr == nil) {
			t.Fatalf("ParseList: %v, loader: %v", perr, ferr)
		}
		if perr != nil {
			if perr.Error() != ferr.Error() {
				t.Fatalf("errors differ: %v vs %v", perr, ferr)
			}
			return
		}
		if want.Counts()[ListDomains] != got.Counts()[ListDomains] {
			t.Fatalf("counts %v vs %v", want.Counts(), got.Counts())
		}
		for _, e := range entries {
			for _, name := range []string{e.Value, "sub." + e.Value, "x" + e.Value} {
				m1, ok1 := want.MatchDomain(name)
				m2, ok2 := got.MatchDomain(name)
				if ok1 != ok2 || m1 != m2 {
					t.Fatalf("%q: %v %+v vs %v %+v", name, ok1, m1, ok2, m2)
				}
			}
		}
	})
}

func TestDomainSetGrowsAndKeepsEveryName(t *testing.T) {
	d := newDomainSet(0)
	const n = 300_000
	for i := 0; i < n; i++ {
		d.add(fmt.Appendf(nil, "host%d.example", i), meta{severity: uint8(i%3 + 1), label: uint16(i % 7)})
	}
	d.add([]byte("host7.example"), meta{severity: 1, label: 9, block: true}) // a later duplicate wins
	d.build()
	if d.len() != n {
		t.Fatalf("len %d", d.len())
	}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("host%d.example", i)
		e, ok := d.lookup(name)
		if !ok || string(d.name(e)) != name {
			t.Fatalf("%s: %v", name, ok)
		}
		m := entryMeta(e)
		if i == 7 {
			if m != (meta{severity: 1, label: 9, block: true}) {
				t.Fatalf("duplicate: %+v", m)
			}
		} else if m != (meta{severity: uint8(i%3 + 1), label: uint16(i % 7)}) {
			t.Fatalf("%s: %+v", name, m)
		}
		if _, ok := d.lookup("x" + name); ok {
			t.Fatalf("x%s matched", name)
		}
	}
}

// BenchmarkOpenBundle measures what loading a bundle of n domains costs:
// verify, decompress, parse, compile.
func BenchmarkOpenBundle(b *testing.B) {
	for _, n := range []int{1_000, 1_000_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			var list bytes.Buffer
			for i := 0; i < n; i++ {
				fmt.Fprintf(&list, "c2-%07d.bad.example 3 c2\n", i)
			}
			entries, err := ParseList(ListDomains, &list)
			if err != nil {
				b.Fatal(err)
			}
			key := newKey(b)
			bundle, err := Build(Spec{Version: 1, Created: t0}, Lists{ListDomains: entries}, DefaultPortScan, key)
			if err != nil {
				b.Fatal(err)
			}
			entries = nil
			pub := key.Public().(ed25519.PublicKey)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				set, _, err := Open(bundle, []ed25519.PublicKey{pub})
				if err != nil || set.Counts()[ListDomains] != n {
					b.Fatal(err)
				}
			}
		})
	}
}
