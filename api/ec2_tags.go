package api

import (
	"context"
	"strings"

	"github.com/labcloud/labcloud/internal/errdefs"
	"github.com/labcloud/labcloud/internal/tags"
)

func (s *Server) registerTags() {
	s.handle(ServiceEC2, "CreateTags", ec2Op(s.createTags))
	s.handle(ServiceEC2, "DeleteTags", ec2Op(s.deleteTags))
	s.handle(ServiceEC2, "DescribeTags", ec2Op(s.describeTags))
}

// TagItem is an EC2 Tag (in a tagSet, or a request's Tag.N).
type TagItem struct {
	Key   string  `locationName:"key"`
	Value *string `locationName:"value"`
}

// TagSpecification is a Create* request's TagSpecification.N.
type TagSpecification struct {
	ResourceType string    `locationName:"resourceType"`
	Tags         []TagItem `locationName:"Tag" locationNameList:"item"`
}

// tagSet turns stored tags into a response tagSet (sorted by key).
func tagSet(m map[string]string) []TagItem {
	out := []TagItem{}
	for _, t := range tags.Sorted(m) {
		v := t.Value
		out = append(out, TagItem{Key: t.Key, Value: &v})
	}
	return out
}

func toTags(items []TagItem) []tags.Tag {
	out := make([]tags.Tag, 0, len(items))
	for _, it := range items {
		v := ""
		if it.Value != nil {
			v = *it.Value
		}
		out = append(out, tags.Tag{Key: it.Key, Value: v})
	}
	return out
}

// specTags picks the tags of the TagSpecifications for resourceType and
// refuses specifications for any other type, as AWS does.
func specTags(specs []TagSpecification, resourceType string) ([]tags.Tag, error) {
	var out []tags.Tag
	for _, sp := range specs {
		if sp.ResourceType != resourceType {
			return nil, errdefs.InvalidParameter("InvalidParameterValue",
				"'%s' is not a valid taggable resource type for this operation: use ResourceType=%s", sp.ResourceType, resourceType)
		}
		out = append(out, toTags(sp.Tags)...)
	}
	for _, t := range out {
		if err := tags.ValidateTag(t.Key, t.Value); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// applyFiltersWithTags is applyFilters that also understands the tag
// filters (tag:<key>, tag-key, tag-value) on the items' tags.
func applyFiltersWithTags[T any](items []T, filters []Filter, fields filterFields[T], tagsOf func(T) map[string]string) ([]T, error) {
	all := filterFields[T]{}
	for k, v := range fields {
		all[k] = v
	}
	for _, f := range filters {
		if tags.IsFilter(f.Name) {
			name := f.Name
			all[name] = func(it T) []string {
				vs, _ := tags.FilterValues(tagsOf(it), name)
				return vs
			}
		}
	}
	return applyFilters(items, filters, all)
}

// CreateTagsInput is the EC2 CreateTags request.
type CreateTagsInput struct {
	Resources []string  `locationName:"ResourceId"`
	Tags      []TagItem `locationName:"Tag" locationNameList:"item"`
}

// DeleteTagsInput is the EC2 DeleteTags request.
type DeleteTagsInput struct {
	Resources []string  `locationName:"resourceId"`
	Tags      []TagItem `locationName:"tag" locationNameList:"item"`
}

// ReturnOutput is the {return: true} reply of many EC2 actions.
type ReturnOutput struct {
	Return bool `locationName:"return"`
}

func (s *Server) createTags(ctx context.Context, c *Call, in *CreateTagsInput) (*ReturnOutput, error) {
	if len(in.Tags) == 0 {
		return nil, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "The request must contain the parameter Tag")
	}
	if err := s.opts.Tags.Create(ctx, c.Principal.AccountID, in.Resources, toTags(in.Tags)); err != nil {
		return nil, err
	}
	return &ReturnOutput{Return: true}, nil
}

func (s *Server) deleteTags(ctx context.Context, c *Call, in *DeleteTagsInput) (*ReturnOutput, error) {
	var del []tags.DeleteTag
	for _, t := range in.Tags {
		del = append(del, tags.DeleteTag{Key: t.Key, Value: t.Value})
	}
	if err := s.opts.Tags.Delete(ctx, c.Principal.AccountID, in.Resources, del); err != nil {
		return nil, err
	}
	return &ReturnOutput{Return: true}, nil
}

// DescribeTagsInput is the EC2 DescribeTags request.
type DescribeTagsInput struct {
	Filters    []Filter `locationName:"Filter"`
	MaxResults *int32   `locationName:"maxResults"`
	NextToken  *string  `locationName:"nextToken"`
}

// DescribeTagsOutput is the EC2 DescribeTags response.
type DescribeTagsOutput struct {
	Tags []TagDescription `locationName:"tagSet" locationNameList:"item"`
}

// TagDescription is one tag of one resource.
type TagDescription struct {
	ResourceID   string `locationName:"resourceId"`
	ResourceType string `locationName:"resourceType"`
	Key          string `locationName:"key"`
	Value        string `locationName:"value"`
}

var tagFilters = filterFields[tags.ResourceTag]{
	"key":           func(t tags.ResourceTag) []string { return []string{t.Key} },
	"value":         func(t tags.ResourceTag) []string { return []string{t.Value} },
	"resource-id":   func(t tags.ResourceTag) []string { return []string{t.ResourceID} },
	"resource-type": func(t tags.ResourceTag) []string { return []string{t.ResourceType} },
}

func (s *Server) describeTags(ctx context.Context, c *Call, in *DescribeTagsInput) (*DescribeTagsOutput, error) {
	all, err := s.opts.Tags.List(ctx, c.Principal.AccountID)
	if err != nil {
		return nil, err
	}
	// tag:<key> keeps the tags of resources that have key with a matching
	// value; evaluate it per resource, then the other filters per tag.
	var plain []Filter
	byResource := map[string]map[string]string{}
	for _, t := range all {
		if byResource[t.ResourceID] == nil {
			byResource[t.ResourceID] = map[string]string{}
		}
		byResource[t.ResourceID][t.Key] = t.Value
	}
	var tagF []Filter
	for _, f := range in.Filters {
		if strings.HasPrefix(f.Name, "tag:") {
			tagF = append(tagF, f)
		} else {
			plain = append(plain, f)
		}
	}
	if len(tagF) > 0 {
		all, err = applyFiltersWithTags(all, tagF, filterFields[tags.ResourceTag]{},
			func(t tags.ResourceTag) map[string]string { return byResource[t.ResourceID] })
		if err != nil {
			return nil, err
		}
	}
	all, err = applyFilters(all, plain, tagFilters)
	if err != nil {
		return nil, err
	}
	out := &DescribeTagsOutput{Tags: []TagDescription{}}
	for _, t := range all {
		out.Tags = append(out.Tags, TagDescription{ResourceID: t.ResourceID, ResourceType: t.ResourceType, Key: t.Key, Value: t.Value})
	}
	return out, nil
}
