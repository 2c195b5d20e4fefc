package render

// MaxExpansion bounds how much larger a rendering is than the JSON text it
// is rendered from. The worst characters take three times their JSON size:
// a two-byte 'é' becomes '\u00E9' in properties and yaml, a four-byte
// character a surrogate pair '\uD83D\uDE00', and JSON's two-byte '\f' or
// '\b' becomes '\u000c' in json. No escape of any format is longer than
// three times what the JSON text spends on that character, and the lines
// around a key and value ('"k": "v"' and a new line in yaml) take at most
// what the JSON object spends around them ('"k":"v",') plus one byte, which
// maxOverhead covers with the object's braces.
const (
	MaxExpansion = 3
	maxOverhead  = 64
)

// MaxSize is the largest file that rendering n bytes of JSON can make, in
// any format. The webhook sizes the secrets volume with it.
func MaxSize(n int) int { return MaxExpansion*n + maxOverhead }
