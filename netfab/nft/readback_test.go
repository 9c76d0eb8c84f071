package nft

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// nftList lists the ruleset of a namespace with the nft binary.
func nftList(t *testing.T, ns string, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns, "nft"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("nft %v in %s: %v\n%s", args, ns, err, out)
	}
	return string(out)
}

func needNft(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("the nft binary is not installed (apt-get install nftables): it is the independent reader of what Apply loaded")
	}
}

// normalize sorts the lines of a listing: the kernel lists set elements
// in hash order, which differs between two loads of the same set.
func normalize(s string) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(l), ","))
		l = strings.TrimPrefix(l, "elements = { ")
		l = strings.TrimSuffix(l, " }")
		if l != "" {
			lines = append(lines, l)
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// TestRenderIsWhatApplyLoads loads Render's text with nft -f into one
// namespace and the same Policy with Apply into another: nft must list
// the same ruleset for both.
func TestRenderIsWhatApplyLoads(t *testing.T) {
	needRoot(t)
	needNft(t)
	for _, tc := range goldenCases() {
		t.Run(tc.name, func(t *testing.T) {
			id := randHex(4)
			byText, byApply := "nf"+id+"t", "nf"+id+"a"
			newNamedNS(t, byText)
			newNamedNS(t, byApply)
			f := filepath.Join(t.TempDir(), "ruleset.nft")
			if err := os.WriteFile(f, []byte(Render(tc.p)), 0o644); err != nil {
				t.Fatal(err)
			}
			nftList(t, byText, "-f", f)
			if err := Apply(byApply, tc.p); err != nil {
				t.Fatal(err)
			}
			a, b := nftList(t, byText, "list", "ruleset"), nftList(t, byApply, "list", "ruleset")
			if normalize(a) != normalize(b) {
				t.Errorf("nft -f of Render and Apply load different rulesets\n--- nft -f:\n%s\n--- Apply:\n%s", a, b)
			}
			// Idempotent: a second Apply lists the same.
			if err := Apply(byApply, tc.p); err != nil {
				t.Fatal(err)
			}
			if c := nftList(t, byApply, "list", "ruleset"); normalize(c) != normalize(b) {
				t.Errorf("second Apply changed the ruleset:\n%s", c)
			}
		})
	}
}
