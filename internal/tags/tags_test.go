package tags_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/labcloud/labcloud/internal/errdefs"
	"github.com/labcloud/labcloud/internal/store"
	"github.com/labcloud/labcloud/internal/store/storetest"
	"github.com/labcloud/labcloud/internal/tags"
)

func newStore(t *testing.T) *store.Store { return storetest.NewEmbedded(t) }

// newTags knows images ami-1 (visible to account A only) and ami-2.
func newTags(t *testing.T) *tags.Tags {
	tg := tags.New(newStore(t))
	tg.Register("ami-", func(_ context.Context, acct, id string) (bool, error) {
		return id == "ami-2" || (id == "ami-1" && acct == "A"), nil
	}, "image")
	return tg
}

func code(err error) string {
	if e, ok := err.(*errdefs.Error); ok {
		return e.Code
	}
	return fmt.Sprint(err)
}

func TestTagCreateDescribeDelete(t *testing.T) {
	tg := newTags(t)
	ctx := context.Background()
	if err := tg.Create(ctx, "A", []string{"ami-1", "ami-2"}, []tags.Tag{{"Name", "web"}, {"env", ""}}); err != nil {
		t.Fatal(err)
	}
	m, err := tg.Of(ctx, "A", "ami-1")
	if err != nil || len(m) != 2 || m["Name"] != "web" || m["env"] != "" {
		t.Fatalf("Of = %v, %v", m, err)
	}
	// Tags belong to the account that set them.
	if err := tg.Create(ctx, "B", []string{"ami-2"}, []tags.Tag{{"Name", "b's"}}); err != nil {
		t.Fatal(err)
	}
	if m, _ := tg.Of(ctx, "A", "ami-2"); m["Name"] != "web" {
		t.Fatalf("B's tag leaked into A's: %v", m)
	}
	all, err := tg.List(ctx, "A")
	if err != nil || len(all) != 4 || all[0] != (tags.ResourceTag{ResourceID: "ami-1", ResourceType: "image", Key: "Name", Value: "web"}) {
		t.Fatalf("List = %+v, %v", all, err)
	}
	// By key and wrong value: kept; by key and right value: gone; by key alone: gone.
	other := "other"
	if err := tg.Delete(ctx, "A", []string{"ami-1"}, []tags.DeleteTag{{Key: "Name", Value: &other}}); err != nil {
		t.Fatal(err)
	}
	if m, _ := tg.Of(ctx, "A", "ami-1"); m["Name"] != "web" {
		t.Fatalf("delete with another value removed the tag: %v", m)
	}
	web := "web"
	if err := tg.Delete(ctx, "A", []string{"ami-1"}, []tags.DeleteTag{{Key: "Name", Value: &web}, {Key: "env"}}); err != nil {
		t.Fatal(err)
	}
	if m, _ := tg.Of(ctx, "A", "ami-1"); len(m) != 0 {
		t.Fatalf("tags left: %v", m)
	}
	if err := tg.Delete(ctx, "A", []string{"ami-2"}, nil); err != nil {
		t.Fatal(err)
	}
	if all, _ := tg.List(ctx, "A"); len(all) != 0 {
		t.Fatalf("List after deleting everything = %+v", all)
	}
}

func TestTagCreateRefuses(t *testing.T) {
	tg := newTags(t)
	ctx := context.Background()
	fifty := make([]tags.Tag, 50)
	for i := range fifty {
		fifty[i] = tags.Tag{Key: fmt.Sprintf("k%02d", i)}
	}
	if err := tg.Create(ctx, "A", []string{"ami-2"}, fifty); err != nil {
		t.Fatalf("50 tags: %v", err)
	}
	tests := []struct {
		name, acct, id, code string
		tags                 []tags.Tag
	}{
		{"unknown prefix", "A", "vol-1", "InvalidID", []tags.Tag{{"a", "b"}}},
		{"not visible", "B", "ami-1", "InvalidAMIID.NotFound", []tags.Tag{{"a", "b"}}},
		{"absent", "A", "ami-3", "InvalidAMIID.NotFound", []tags.Tag{{"a", "b"}}},
		{"aws prefix", "A", "ami-1", "InvalidParameterValue", []tags.Tag{{"aws:x", "b"}}},
		{"empty key", "A", "ami-1", "InvalidParameterValue", []tags.Tag{{"", "b"}}},
		{"long key", "A", "ami-1", "InvalidParameterValue", []tags.Tag{{strings.Repeat("k", 129), "b"}}},
		{"long value", "A", "ami-1", "InvalidParameterValue", []tags.Tag{{"k", strings.Repeat("v", 257)}}},
		{"51st tag", "A", "ami-2", "TagLimitExceeded", []tags.Tag{{"one-more", ""}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tg.Create(ctx, tt.acct, []string{tt.id}, tt.tags); code(err) != tt.code {
				t.Fatalf("Create: %v, want %s", err, tt.code)
			}
		})
	}
	// Overwriting one of the 50 is fine.
	if err := tg.Create(ctx, "A", []string{"ami-2"}, []tags.Tag{{"k00", "new"}}); err != nil {
		t.Fatal(err)
	}
}

func TestTagFilterValues(t *testing.T) {
	m := map[string]string{"Name": "web", "env": "prod"}
	tests := []struct {
		name   string
		filter string
		want   []string
		ok     bool
	}{
		{"tag:K present", "tag:Name", []string{"web"}, true},
		{"tag:K absent", "tag:nope", nil, true},
		{"tag-key", "tag-key", []string{"Name", "env"}, true},
		{"tag-value", "tag-value", []string{"prod", "web"}, true},
		{"not a tag filter", "name", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := tags.FilterValues(m, tt.filter)
			sort.Strings(got)
			if ok != tt.ok || fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("FilterValues(%s) = %v, %v; want %v, %v", tt.filter, got, ok, tt.want, tt.ok)
			}
		})
	}
}
