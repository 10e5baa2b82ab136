package console

import (
	"encoding/json"
	"strings"
)

// masked is what a secret's value is shown as.
const masked = "[FILTERED]"

// maskedJSON decodes data and masks the values of keys that name secrets; text that
// is not JSON is shown as a description, never as is.
func maskedJSON(data []byte) any {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return "(not JSON)"
	}
	return mask(v)
}

// mask replaces, in place, the values of keys that name secrets (token, password,
// secret, key), as the traffic log and Phoenix's filter_parameters do.
func mask(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, val := range v {
			if secretKey(k) {
				v[k] = masked
			} else {
				v[k] = mask(val)
			}
		}
	case []any:
		for i := range v {
			v[i] = mask(v[i])
		}
	}
	return v
}

// secretKey reports whether a key's name says it holds a secret.
func secretKey(k string) bool {
	k = strings.ToLower(k)
	for _, s := range []string{"token", "password", "secret", "key"} {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}
