package console

import (
	"encoding/json"

	"github.com/luachan/luachan/engine"
)

// maskedJSON decodes data and masks the values of keys that name secrets (see
// engine.FilterSecrets); text that is not JSON is shown as a description, never as is.
func maskedJSON(data []byte) any {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return "(not JSON)"
	}
	return engine.FilterSecrets(v)
}
