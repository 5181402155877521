package http1

import "strings"

// Token says whether s is an RFC 9110 token, as field names and methods
// are: for checking names a config gives.
func Token(s string) bool {
	for i := range len(s) {
		if !tcharTable[s[i]] {
			return false
		}
	}
	return s != ""
}

// Method says whether s can be a method a config names: a token in capitals
// (methods are case-sensitive, and the standard ones upper-case).
func Method(s string) bool { return Token(s) && strings.ToUpper(s) == s }
