package qcow2

import (
	"reflect"
	"strings"
	"testing"
)

func TestCommandLines(t *testing.T) {
	plain := image{Path: "/s/v.qcow2", Encrypted: []bool{false, false}}
	enc := image{Path: "/s/a,b.qcow2", Encrypted: []bool{true, false, true}, KeyFile: "/s/keys/k.key"}
	parentEnc := image{Path: "/s/p.qcow2", Encrypted: []bool{true}, KeyFile: "/s/keys/k.key"}
	obj := "--object secret,id=sec0,file=/s/keys/k.key,format=raw"
	for _, tc := range []struct {
		name string
		got  []string
		want string
	}{
		{"create plain", createArgs("/s/v.qcow2", 1<<30, false, "", ""),
			"create -q -f qcow2 /s/v.qcow2 1073741824"},
		{"create overlay", createArgs("/s/v.qcow2", 1<<30, false, "", "/s/snap.qcow2"),
			"create -q -f qcow2 -b /s/snap.qcow2 -F qcow2 -u /s/v.qcow2 1073741824"},
		{"create encrypted", createArgs("/s/v.qcow2", 512, true, "/s/keys/k.key", ""),
			"create -q " + obj + " -f qcow2 -o encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10 /s/v.qcow2 512"},
		{"rebase plain onto nothing", rebaseArgs(plain, nil, true),
			"rebase -q -U -t writeback -T writeback -b  -f qcow2 /s/v.qcow2"},
		{"rebase plain onto parent", rebaseArgs(plain, &image{Path: "/s/p.qcow2", Encrypted: []bool{false}}, false),
			"rebase -q -t writeback -T writeback -b /s/p.qcow2 -F qcow2 -f qcow2 /s/v.qcow2"},
		{"rebase encrypted chain onto encrypted parent", rebaseArgs(enc, &parentEnc, true),
			`rebase -q -U -t writeback -T writeback -b json:{"driver":"qcow2","encrypt.key-secret":"sec0","file.filename":"/s/p.qcow2"} -F qcow2 ` +
				obj + " --image-opts driver=qcow2,file.filename=/s/a,,b.qcow2,encrypt.key-secret=sec0,backing.backing.encrypt.key-secret=sec0"},
		{"fix backing name", fixBackingArgs(enc, "/s/p.qcow2"),
			"rebase -q -u -b /s/p.qcow2 -F qcow2 " + obj + " --image-opts driver=qcow2,file.filename=/s/a,,b.qcow2,encrypt.key-secret=sec0"},
		{"resize", resizeArgs(plain, 2<<30), "resize -q -f qcow2 /s/v.qcow2 2147483648"},
		{"check encrypted", checkArgs(enc),
			"check -U --output=json " + obj + " --image-opts driver=qcow2,file.filename=/s/a,,b.qcow2,encrypt.key-secret=sec0,backing.backing.encrypt.key-secret=sec0"},
		{"convert to encrypted", convertArgs(plain, "/s/e.qcow2", true, "/s/keys/k.key"),
			"convert -q " + obj + " -f qcow2 /s/v.qcow2 -O qcow2 -o encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10 /s/e.qcow2"},
		{"info", infoArgs("/s/v.qcow2"), "info -U --output=json -f qcow2 /s/v.qcow2"},
		{"commit plain", commitArgs(plain), "commit -q -t writeback -f qcow2 /s/v.qcow2"},
		{"commit encrypted", commitArgs(enc),
			"commit -q -t writeback " + obj + " --image-opts driver=qcow2,file.filename=/s/a,,b.qcow2,encrypt.key-secret=sec0,backing.backing.encrypt.key-secret=sec0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := strings.Join(tc.got, " "); got != tc.want {
				t.Errorf("got\n  %s\nwant\n  %s", got, tc.want)
			}
		})
	}
}

func TestOptionPairsTopOnly(t *testing.T) {
	im := image{Path: "/v", Encrypted: []bool{true, true}}
	want := [][2]string{{"driver", "qcow2"}, {"file.filename", "/v"}, {"encrypt.key-secret", "sec0"}}
	if got := im.optionPairs(true); !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
