package hub

// CheckPayload verifies that p is a JSON object nesting at most maxDepth levels, as a
// client's payload must; its errors wrap ErrBadFrame. The HTTP API (httpapi) checks the
// broadcasts it is given with it.
func CheckPayload(p []byte, maxDepth int) error { return checkPayload(p, maxDepth) }
