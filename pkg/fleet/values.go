package fleet

import "github.com/fleetsync/fleetsync/api/v1alpha1"

// MergeValues deep-merges over into a copy of base: maps merge key by key,
// anything else in over replaces. Neither argument is modified.
func MergeValues(base, over map[string]any) map[string]any {
	if base == nil && over == nil {
		return nil
	}
	out := make(map[string]any, len(base)+len(over))
	for k, v := range base {
		out[k] = copyValue(v)
	}
	for k, v := range over {
		if om, ok := ValuesMap(v); ok {
			if bm, ok := ValuesMap(out[k]); ok {
				out[k] = MergeValues(bm, om)
				continue
			}
		}
		out[k] = copyValue(v)
	}
	return out
}

// ValuesMap returns v as a map when it is one (a decoded map or Values).
func ValuesMap(v any) (map[string]any, bool) {
	switch m := v.(type) {
	case map[string]any:
		return m, true
	case v1alpha1.Values:
		return m, true
	}
	return nil, false
}

// copyValue deep-copies maps and lists of values.
func copyValue(v any) any {
	if m, ok := ValuesMap(v); ok {
		return MergeValues(nil, m)
	}
	if l, ok := v.([]any); ok {
		c := make([]any, len(l))
		for i := range l {
			c[i] = copyValue(l[i])
		}
		return c
	}
	return v
}
