package tekton

import (
	"encoding/json"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// fieldTree is a partial-response mask: each listed field maps to the mask
// of its own fields, nil meaning the whole field.
type fieldTree map[string]fieldTree

// parseFields reads Tekton Results' fields parameter: comma-separated proto
// paths from the root of the answer ("records.name,next_page_token"). A
// path covered by a listed parent path adds nothing.
func parseFields(values []string) fieldTree {
	var paths [][]string
	for _, v := range values {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				paths = append(paths, strings.Split(p, "."))
			}
		}
	}
	if len(paths) == 0 {
		return nil
	}
	slices.SortFunc(paths, func(a, b []string) int { return len(a) - len(b) })
	root := fieldTree{}
	for _, path := range paths {
		node := root
		for i, name := range path {
			child, seen := node[name]
			if seen && child == nil {
				break // a parent is wanted whole
			}
			if i == len(path)-1 {
				node[name] = nil
				break
			}
			if !seen {
				child = fieldTree{}
				node[name] = child
			}
			node = child
		}
	}
	return root
}

// prune clears every field of m the mask does not list. Map fields keep the
// listed keys; a bytes field holding JSON (Record data.value) is projected
// onto the listed paths of its JSON. Unknown paths are ignored.
func prune(m protoreflect.Message, mask fieldTree) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		child, listed := mask[string(fd.Name())]
		switch {
		case !listed:
			m.Clear(fd)
		case child == nil:
		case fd.IsMap():
			var drop []protoreflect.MapKey
			v.Map().Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
				if _, ok := child[k.String()]; !ok {
					drop = append(drop, k)
				}
				return true
			})
			for _, k := range drop {
				v.Map().Clear(k)
			}
		case fd.IsList() && fd.Message() != nil:
			for i := range v.List().Len() {
				prune(v.List().Get(i).Message(), child)
			}
		case fd.Message() != nil:
			prune(v.Message(), child)
		case fd.Kind() == protoreflect.BytesKind:
			m.Set(fd, protoreflect.ValueOfBytes(projectJSON(v.Bytes(), child)))
		}
		return true
	})
}

// projectJSON keeps the listed paths of a JSON object: a new object holding
// only them, null where a path is missing. Arrays are kept or dropped
// whole, as upstream does.
func projectJSON(raw []byte, mask fieldTree) []byte {
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return raw
	}
	out, _ := json.Marshal(project(doc, mask))
	return out
}

func project(v any, mask fieldTree) map[string]any {
	obj, _ := v.(map[string]any)
	out := make(map[string]any, len(mask))
	for key, child := range mask {
		val, ok := obj[key]
		switch {
		case child != nil:
			out[key] = project(val, child) // missing leaves become null
		case ok:
			out[key] = val
		default:
			out[key] = nil
		}
	}
	return out
}

// applyFields prunes an answer to the mask, when there is one.
func applyFields(resp any, mask fieldTree) {
	if msg, ok := resp.(proto.Message); ok && mask != nil {
		prune(msg.ProtoReflect(), mask)
	}
}
