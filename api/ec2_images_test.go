package api

import (
	"context"
	"encoding/base64"
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/labcloud/labcloud/api/sigv4"
	"github.com/labcloud/labcloud/iamd"
	"github.com/labcloud/labcloud/imagestore"
	"github.com/labcloud/labcloud/internal/keypairs"
	"github.com/labcloud/labcloud/internal/store"
	"github.com/labcloud/labcloud/internal/store/embedded"
	"github.com/labcloud/labcloud/internal/tags"
)

// ec2TestServer is an API server with key pairs, tags and images over a
// real embedded etcd, with the admin account's and a second account's root
// keys.
type ec2TestServer struct {
	url          string
	admin, other iamd.AccessKey
}

func newEC2TestServer(t *testing.T) *ec2TestServer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	srv, err := embedded.Start(ctx, embedded.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatalf("starting embedded etcd: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	cli, err := store.Dial(ctx, srv.Endpoints())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	st := store.New(cli, "/labcloud/")
	accounts := iamd.NewAccounts(st)
	_, admin, err := accounts.Bootstrap(ctx, "admin")
	if err != nil {
		t.Fatal(err)
	}
	_, other, err := accounts.CreateAccount(ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	kp := keypairs.New(st)
	images := imagestore.New(st, filepath.Join(t.TempDir(), "images"))
	tg := tags.New(st)
	tg.Register("ami-", images.Exists, "image")
	tg.Register("key-", kp.Exists, "key-pair")
	hs := httptest.NewServer(New(Options{Accounts: accounts, Region: "lab-1", KeyPairs: kp, Images: images, Tags: tg}))
	t.Cleanup(hs.Close)
	return &ec2TestServer{url: hs.URL, admin: admin, other: other}
}

func (s *ec2TestServer) call(t *testing.T, k iamd.AccessKey, action string, params url.Values) (int, []byte) {
	t.Helper()
	form := url.Values{"Action": {action}, "Version": {"2016-11-15"}}
	for name, vs := range params {
		form[name] = vs
	}
	body := form.Encode()
	req, err := http.NewRequest("POST", s.url+"/", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	if err := sigv4.Sign(req, []byte(body), sigv4.Key{AccessKeyID: k.AccessKeyID, SecretAccessKey: k.SecretAccessKey}, "lab-1", "ec2", time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (s *ec2TestServer) ok(t *testing.T, k iamd.AccessKey, action string, params url.Values, out any) {
	t.Helper()
	status, body := s.call(t, k, action, params)
	if status != 200 {
		t.Fatalf("%s: HTTP %d: %s", action, status, body)
	}
	if out != nil {
		if err := xml.Unmarshal(body, out); err != nil {
			t.Fatalf("%s: decoding %s: %v", action, body, err)
		}
	}
}

func (s *ec2TestServer) fails(t *testing.T, k iamd.AccessKey, action string, params url.Values, code string) string {
	t.Helper()
	status, body := s.call(t, k, action, params)
	var e struct {
		Errors struct {
			Error struct{ Code, Message string }
		}
	}
	if err := xml.Unmarshal(body, &e); err != nil {
		t.Fatalf("%s: not an error document (HTTP %d): %s", action, status, body)
	}
	if status < 400 || e.Errors.Error.Code != code {
		t.Fatalf("%s: HTTP %d %s (%s), want %s", action, status, e.Errors.Error.Code, e.Errors.Error.Message, code)
	}
	return e.Errors.Error.Message
}

type keySetXML struct {
	Items []struct {
		KeyPairID      string `xml:"keyPairId"`
		KeyName        string `xml:"keyName"`
		KeyType        string `xml:"keyType"`
		KeyFingerprint string `xml:"keyFingerprint"`
		PublicKey      string `xml:"publicKey"`
		CreateTime     string `xml:"createTime"`
		Tags           []struct {
			Key   string `xml:"key"`
			Value string `xml:"value"`
		} `xml:"tagSet>item"`
	} `xml:"keySet>item"`
}

func TestKeyPairWire(t *testing.T) {
	s := newEC2TestServer(t)
	var created struct {
		KeyPairID, KeyName, KeyFingerprint, KeyMaterial string
	}
	var raw struct {
		KeyPairID      string `xml:"keyPairId"`
		KeyName        string `xml:"keyName"`
		KeyFingerprint string `xml:"keyFingerprint"`
		KeyMaterial    string `xml:"keyMaterial"`
		Tags           []struct {
			Key string `xml:"key"`
		} `xml:"tagSet>item"`
	}
	s.ok(t, s.admin, "CreateKeyPair", url.Values{"KeyName": {"k1"}, "KeyType": {"ed25519"},
		"TagSpecification.1.ResourceType": {"key-pair"}, "TagSpecification.1.Tag.1.Key": {"team"}, "TagSpecification.1.Tag.1.Value": {"red"}}, &raw)
	created.KeyPairID, created.KeyMaterial = raw.KeyPairID, raw.KeyMaterial
	if !strings.HasPrefix(raw.KeyPairID, "key-") || !strings.Contains(raw.KeyMaterial, "OPENSSH PRIVATE KEY") || len(raw.Tags) != 1 {
		t.Fatalf("CreateKeyPair: %+v", raw)
	}
	s.fails(t, s.admin, "CreateKeyPair", url.Values{"KeyName": {"k1"}}, "InvalidKeyPair.Duplicate")
	s.fails(t, s.admin, "CreateKeyPair", url.Values{"KeyName": {"k9"}, "KeyFormat": {"ppk"}}, "Unsupported")
	s.fails(t, s.admin, "CreateKeyPair", url.Values{"KeyName": {"k9"}, "KeyType": {"dsa"}}, "InvalidParameterValue")

	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		t.Fatal("ssh-keygen not found: run `make deps` (openssh-client)")
	}
	dir := t.TempDir()
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", dir+"/id").CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	pub, _ := os.ReadFile(dir + "/id.pub")
	s.ok(t, s.admin, "ImportKeyPair", url.Values{"KeyName": {"imported"}, "PublicKeyMaterial": {base64.StdEncoding.EncodeToString(pub)}}, nil)
	s.fails(t, s.admin, "ImportKeyPair", url.Values{"KeyName": {"bad"}, "PublicKeyMaterial": {base64.StdEncoding.EncodeToString([]byte("ssh-dss AAAA"))}}, "InvalidKey.Format")

	var ks keySetXML
	s.ok(t, s.admin, "DescribeKeyPairs", url.Values{"IncludePublicKey": {"true"}}, &ks)
	if len(ks.Items) != 2 || ks.Items[1].KeyName != "k1" || ks.Items[1].KeyType != "ed25519" || !strings.HasPrefix(ks.Items[1].PublicKey, "ssh-ed25519 ") ||
		ks.Items[1].CreateTime == "" || len(ks.Items[1].Tags) != 1 || ks.Items[1].Tags[0].Value != "red" {
		t.Fatalf("DescribeKeyPairs: %+v", ks)
	}
	ks = keySetXML{}
	s.ok(t, s.admin, "DescribeKeyPairs", url.Values{"Filter.1.Name": {"tag:team"}, "Filter.1.Value.1": {"r*"}}, &ks)
	if len(ks.Items) != 1 || ks.Items[0].KeyName != "k1" || ks.Items[0].PublicKey != "" {
		t.Fatalf("DescribeKeyPairs tag filter: %+v", ks)
	}
	ks = keySetXML{}
	s.ok(t, s.admin, "DescribeKeyPairs", url.Values{"Filter.1.Name": {"key-type"}, "Filter.1.Value.1": {"rsa"}}, &ks)
	if len(ks.Items) != 1 || ks.Items[0].KeyName != "imported" {
		t.Fatalf("DescribeKeyPairs key-type filter: %+v", ks)
	}
	s.fails(t, s.admin, "DescribeKeyPairs", url.Values{"KeyName.1": {"nope"}}, "InvalidKeyPair.NotFound")
	// Key pairs are per account.
	ks = keySetXML{}
	s.ok(t, s.other, "DescribeKeyPairs", nil, &ks)
	if len(ks.Items) != 0 {
		t.Fatalf("other account sees %+v", ks)
	}

	s.ok(t, s.admin, "DeleteKeyPair", url.Values{"KeyName": {"k1"}}, nil)
	s.ok(t, s.admin, "DeleteKeyPair", url.Values{"KeyName": {"k1"}}, nil) // idempotent, as in AWS
	s.fails(t, s.admin, "DeleteKeyPair", url.Values{"KeyPairId": {created.KeyPairID}}, "InvalidKeyPair.NotFound")
}

func TestImageAndTagWire(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Fatal("qemu-img not found: run `make deps` (qemu-utils)")
	}
	s := newEC2TestServer(t)
	disk := filepath.Join(t.TempDir(), "disk.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-f", "qcow2", disk, "2G").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v %s", err, out)
	}
	reg := url.Values{"Name": {"my image"}, "ImageLocation": {"file://" + disk}}
	msg := s.fails(t, s.other, "RegisterImage", reg, "UnauthorizedOperation")
	if !strings.Contains(msg, "admin account") {
		t.Fatalf("refusal does not say who may register: %s", msg)
	}
	var r struct {
		ImageID string `xml:"imageId"`
	}
	s.ok(t, s.admin, "RegisterImage", reg, &r)
	s.fails(t, s.admin, "RegisterImage", reg, "InvalidAMIName.Duplicate")

	type imagesXML struct {
		Items []struct {
			ImageID   string   `xml:"imageId"`
			Name      string   `xml:"name"`
			State     string   `xml:"imageState"`
			Public    bool     `xml:"isPublic"`
			Alias     string   `xml:"imageOwnerAlias"`
			Hyper     string   `xml:"hypervisor"`
			RootSize  int      `xml:"blockDeviceMapping>item>ebs>volumeSize"`
			RootDev   string   `xml:"blockDeviceMapping>item>deviceName"`
			TagValues []string `xml:"tagSet>item>value"`
		} `xml:"imagesSet>item"`
	}
	var im imagesXML
	s.ok(t, s.other, "DescribeImages", nil, &im)
	if len(im.Items) != 1 || im.Items[0].ImageID != r.ImageID || !im.Items[0].Public || im.Items[0].Alias != "labcloud" ||
		im.Items[0].State != "available" || im.Items[0].RootSize != 2 || im.Items[0].RootDev != "/dev/xvda" || im.Items[0].Hyper != "xen" {
		t.Fatalf("DescribeImages as another account: %+v", im)
	}
	im = imagesXML{}
	s.ok(t, s.other, "DescribeImages", url.Values{"Owner.1": {"self"}}, &im)
	if len(im.Items) != 0 {
		t.Fatalf("Owner=self shows another account's image: %+v", im)
	}
	im = imagesXML{}
	s.ok(t, s.other, "DescribeImages", url.Values{"Owner.1": {"labcloud"}, "Filter.1.Name": {"name"}, "Filter.1.Value.1": {"my*"}}, &im)
	if len(im.Items) != 1 {
		t.Fatalf("Owner=labcloud name=my*: %+v", im)
	}

	// Tags on a public image belong to the account that set them.
	s.ok(t, s.other, "CreateTags", url.Values{"ResourceId.1": {r.ImageID}, "Tag.1.Key": {"use"}, "Tag.1.Value": {"lab"}}, nil)
	im = imagesXML{}
	s.ok(t, s.other, "DescribeImages", url.Values{"Filter.1.Name": {"tag:use"}, "Filter.1.Value.1": {"lab"}}, &im)
	if len(im.Items) != 1 || len(im.Items[0].TagValues) != 1 {
		t.Fatalf("tag filter: %+v", im)
	}
	im = imagesXML{}
	s.ok(t, s.admin, "DescribeImages", url.Values{"Filter.1.Name": {"tag:use"}, "Filter.1.Value.1": {"lab"}}, &im)
	if len(im.Items) != 0 {
		t.Fatalf("the owner sees another account's tags: %+v", im)
	}
	var tg struct {
		Items []struct {
			ResourceID   string `xml:"resourceId"`
			ResourceType string `xml:"resourceType"`
			Key          string `xml:"key"`
		} `xml:"tagSet>item"`
	}
	s.ok(t, s.other, "DescribeTags", url.Values{"Filter.1.Name": {"resource-type"}, "Filter.1.Value.1": {"image"}}, &tg)
	if len(tg.Items) != 1 || tg.Items[0].ResourceID != r.ImageID || tg.Items[0].Key != "use" {
		t.Fatalf("DescribeTags: %+v", tg)
	}
	s.fails(t, s.other, "CreateTags", url.Values{"ResourceId.1": {r.ImageID}, "Tag.1.Key": {"aws:x"}, "Tag.1.Value": {"v"}}, "InvalidParameterValue")
	s.fails(t, s.other, "CreateTags", url.Values{"ResourceId.1": {"ami-12345678"}, "Tag.1.Key": {"k"}}, "InvalidAMIID.NotFound")
	s.fails(t, s.other, "CreateTags", url.Values{"ResourceId.1": {"zzz-1"}, "Tag.1.Key": {"k"}}, "InvalidID")
	s.ok(t, s.other, "DeleteTags", url.Values{"ResourceId.1": {r.ImageID}, "Tag.1.Key": {"use"}}, nil)
	tg.Items = nil
	s.ok(t, s.other, "DescribeTags", nil, &tg)
	if len(tg.Items) != 0 {
		t.Fatalf("DescribeTags after DeleteTags: %+v", tg)
	}

	s.fails(t, s.other, "DescribeImages", url.Values{"ImageId.1": {"ami-xyz"}}, "InvalidAMIID.Malformed")
	s.fails(t, s.other, "DescribeImages", url.Values{"ImageId.1": {"ami-0123456789abcdef0"}}, "InvalidAMIID.NotFound")
	s.fails(t, s.other, "DeregisterImage", url.Values{"ImageId": {r.ImageID}}, "AuthFailure")
	s.ok(t, s.admin, "DeregisterImage", url.Values{"ImageId": {r.ImageID}}, nil)
	s.fails(t, s.admin, "DescribeImages", url.Values{"ImageId.1": {r.ImageID}}, "InvalidAMIID.NotFound")
}

func TestEC2ResourceARNs(t *testing.T) {
	tests := []struct {
		name, action string
		params       url.Values
		want         []string
	}{
		{"create key pair", "ec2:CreateKeyPair", url.Values{"KeyName": {"k"}}, []string{"arn:aws:ec2:lab-1:123456789012:key-pair/k"}},
		{"delete key pair by id", "ec2:DeleteKeyPair", url.Values{"KeyPairId": {"key-0123"}}, []string{"arn:aws:ec2:lab-1:123456789012:key-pair/key-0123"}},
		{"register image", "ec2:RegisterImage", url.Values{"Name": {"x"}}, []string{"arn:aws:ec2:lab-1::image/*"}},
		{"deregister image", "ec2:DeregisterImage", url.Values{"ImageId": {"ami-12345678"}}, []string{"arn:aws:ec2:lab-1::image/ami-12345678"}},
		{"create tags", "ec2:CreateTags", url.Values{"ResourceId.1": {"ami-12345678"}, "ResourceId.2": {"key-1"}},
			[]string{"arn:aws:ec2:lab-1:123456789012:key-pair/key-1", "arn:aws:ec2:lab-1::image/ami-12345678"}},
		{"delete tags", "ec2:DeleteTags", url.Values{"ResourceId.1": {"i-0abc"}}, []string{"arn:aws:ec2:lab-1:123456789012:instance/i-0abc"}},
		{"describe images", "ec2:DescribeImages", url.Values{}, []string{"*"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Call{Region: "lab-1", Principal: iamd.Principal{AccountID: "123456789012", Type: iamd.PrincipalUser, UserName: "alice"}}
			got := actionTable[tt.action].resources(c, tt.params)
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Fatalf("%s resources = %v, want %v", tt.action, got, tt.want)
			}
		})
	}
}
