package engine

import "testing"

func TestRouterMostSpecificWins(t *testing.T) {
	files := map[string]string{ // file name -> pattern
		"a_rooms.lua":  "rooms:*",
		"b_lobby.lua":  "rooms:lobby",
		"c_admin.lua":  "rooms:admin:*",
		"d_dup.lua":    "rooms:*", // loses to a_rooms.lua, earlier by name
		"e_exact2.lua": "chat",
	}
	var claims []claim
	for name, pattern := range files {
		claims = append(claims, claim{pattern: pattern, file: &scriptFile{name: name}})
	}
	r, conflicts := newRouter(claims)
	if len(conflicts) != 1 || conflicts[0].file.name != "d_dup.lua" {
		t.Fatalf("conflicts = %v, want only d_dup.lua", conflicts)
	}
	if owner := r.owner("rooms:*"); owner == nil || owner.name != "a_rooms.lua" {
		t.Errorf("owner(rooms:*) = %v, want a_rooms.lua", owner)
	}
	owners := map[string]string{}
	for pattern, f := range r.owners() {
		owners[pattern] = f.name
	}
	want := map[string]string{"rooms:*": "a_rooms.lua", "rooms:lobby": "b_lobby.lua", "rooms:admin:*": "c_admin.lua", "chat": "e_exact2.lua"}
	if len(owners) != len(want) {
		t.Errorf("owners() = %v, want %v", owners, want)
	}
	for pattern, name := range want {
		if owners[pattern] != name {
			t.Errorf("owners()[%q] = %q, want %q", pattern, owners[pattern], name)
		}
	}
	tests := []struct {
		topic, want string
	}{
		{"rooms:lobby", "b_lobby.lua"},
		{"rooms:lobbyx", "a_rooms.lua"},
		{"rooms:admin:1", "c_admin.lua"},
		{"rooms:admin", "a_rooms.lua"},
		{"rooms:", "a_rooms.lua"},
		{"chat", "e_exact2.lua"},
		{"chat:1", ""},
		{"other", ""},
	}
	for _, tc := range tests {
		t.Run(tc.topic, func(t *testing.T) {
			got := r.route(tc.topic)
			name := ""
			if got != nil {
				name = got.name
			}
			if name != tc.want {
				t.Errorf("route(%q) = %q, want %q", tc.topic, name, tc.want)
			}
		})
	}
}
