package render

import (
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// checkEmit compares appendYAMLDoc with sigs.k8s.io/yaml.Marshal for o; it
// reports whether the emitter handled o itself.
func checkEmit(t *testing.T, where string, o map[string]any) bool {
	t.Helper()
	want, werr := yaml.Marshal(o)
	got, ok := appendYAMLDoc(nil, o)
	if !ok {
		return false
	}
	if werr != nil {
		t.Fatalf("%s: yaml.Marshal fails (%v) but the emitter wrote:\n%s", where, werr, got)
	}
	if string(got) != string(want) {
		t.Fatalf("%s: emitter output differs from yaml.Marshal\n--- emitter:\n%s\n--- yaml.Marshal:\n%s\n--- object: %#v", where, got, want, o)
	}
	return true
}

// TestEmitGolden: every object of the golden outputs is written as
// yaml.Marshal writes it, and by the emitter itself.
func TestEmitGolden(t *testing.T) {
	n, fast := 0, 0
	for _, root := range []string{"testdata", filepath.Join("..", "..", "examples")} {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".yaml") {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			objs, err := decodeObjects(b, p)
			if err != nil {
				return nil // not manifests (values, fixtures of errors)
			}
			for _, o := range objs {
				n++
				if checkEmit(t, p, o) {
					fast++
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if n == 0 {
		t.Fatal("no objects found")
	}
	t.Logf("%d objects, %d by the emitter", n, fast)
	if fast < n*9/10 {
		t.Errorf("only %d of %d golden objects are written by the emitter", fast, n)
	}
}

// TestEmitGenerated compares the emitter with yaml.Marshal on generated
// values made of the characters that change go-yaml's choices.
func TestEmitGenerated(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	fast := 0
	const cases = 20000
	for range cases {
		o := map[string]any{}
		for range 1 + r.IntN(4) {
			o[genString(r, 12)] = genValue(r, 3)
		}
		if checkEmit(t, "generated", o) {
			fast++
		}
	}
	if fast < cases/5 {
		t.Errorf("only %d of %d generated objects are written by the emitter", fast, cases)
	}
}

// Fixed strings that go-yaml treats specially.
var specialStrings = []string{
	"", "~", "null", "true", "False", "yes", "on", "OFF", "y", "n", "<<", ".inf", "-.Inf", ".nan", ".5", ".x",
	"0", "-1", "+1", "007", "0x1F", "0o17", "0b101", "-0b101", "1_000", "1e3", "1E-7", "1.", "-.5e+3", "12:30", "1:20:30.5",
	"190:20:30", "2001-12-14", "2001-12-14t21:59:43.10-05:00", "2001-12-14 21:59:43.10", "2001-1-2", "1.2.3", "100m", "512Mi",
	"---", "...", "--- x", "- x", "-x", "? x", "?x", ": x", ":x", "x: y", "x:y", "x #y", "x#y", "#x", "*", "*/5 * * * *",
	"&a", "!x", "|", ">", "'", "\"", "%x", "@x", "`x", "[x]", "{x}", ",x", "x,y", "a'b", "a\"b", "a\\b",
	" x", "x ", " ", "x\n", "x\ny", "x\n\ny\n", " x\ny", "x \ny", "x\n y", "\nx", "x\n\n", "\n", "héllo", "a\tb",
}

const genAlphabet = "abcXYZ019 :#-'\"\\\n.*{[,~?_/"

func genString(r *rand.Rand, maxLen int) string {
	switch r.IntN(6) {
	case 0:
		return specialStrings[r.IntN(len(specialStrings))]
	case 1:
		// long words and spaces: folding after column 80
		var b strings.Builder
		for range 5 + r.IntN(40) {
			if r.IntN(8) == 0 {
				b.WriteString("  ")
			}
			b.WriteString(strings.Repeat("w", 1+r.IntN(12)))
			b.WriteByte(' ')
		}
		s := strings.TrimSuffix(b.String(), " ")
		if r.IntN(3) == 0 {
			s = "'" + s
		}
		if r.IntN(4) == 0 {
			s = "1" + s[1:] // may resolve to a string or not
		}
		return s
	}
	n := r.IntN(maxLen + 1)
	b := make([]byte, n)
	for i := range b {
		b[i] = genAlphabet[r.IntN(len(genAlphabet))]
	}
	return string(b)
}

func genValue(r *rand.Rand, depth int) any {
	k := r.IntN(10)
	if depth == 0 && k < 4 {
		k += 4
	}
	switch k {
	case 0, 1:
		m := map[string]any{}
		for range r.IntN(4) {
			m[genString(r, 140)] = genValue(r, depth-1)
		}
		return m
	case 2, 3:
		l := make([]any, r.IntN(4))
		for i := range l {
			l[i] = genValue(r, depth-1)
		}
		return l
	case 4:
		switch r.IntN(8) {
		case 0:
			return nil
		case 1:
			return r.IntN(2) == 0
		case 2:
			return r.Int64() - math.MaxInt64/2
		case 3:
			return int64(r.IntN(100))
		case 4:
			return float64(r.IntN(1000)) / 8
		case 5:
			return math.Ldexp(r.Float64(), r.IntN(140)-70)
		case 6:
			return float64(r.IntN(1 << 20))
		default:
			return r.NormFloat64() * 1e20
		}
	}
	return genString(r, 200)
}
