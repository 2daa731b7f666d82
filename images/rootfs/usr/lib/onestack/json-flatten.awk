# Flattens one JSON document into "PATH<TAB>VALUE" lines, one per scalar:
#   {"public_keys": {"k1": "ssh-ed25519 AAAA… c\n"}, "keys": [{"data": "…"}]}
# gives
#   .public_keys.k1	ssh-ed25519 AAAA… c
#   .keys[0].data	…
# so shell scripts can pick values with grep/cut. Busybox has no JSON tool;
# this is all the metadata reader needs. Escaped control characters become
# spaces and values are trimmed: every value stays on its own line.
# Usage: awk -f json-flatten.awk < meta_data.json

BEGIN { RS = "\001" }
{ doc = doc $0 }
END {
	pos = 1
	n = length(doc)
	value("")
	skip()
	if (pos <= n) fail("trailing data")
}

function fail(why) {
	printf "json-flatten: %s at offset %d\n", why, pos > "/dev/stderr"
	bad = 1
	exit 1
}

function skip() {
	while (pos <= n && index(" \t\r\n", substr(doc, pos, 1))) pos++
}

function emit(path, v) {
	sub(/^ +/, "", v)
	sub(/ +$/, "", v)
	print path "\t" v
}

function value(path,   c, lit) {
	skip()
	c = substr(doc, pos, 1)
	if (c == "{") object(path)
	else if (c == "[") array(path)
	else if (c == "\"") emit(path, string())
	else if (match(substr(doc, pos), /^(true|false|null|-?[0-9][0-9.eE+-]*)/)) {
		lit = substr(doc, pos, RLENGTH)
		pos += RLENGTH
		emit(path, lit)
	} else fail("unexpected character '" c "'")
}

function object(path,   key, c) {
	pos++
	skip()
	if (substr(doc, pos, 1) == "}") { pos++; return }
	while (!bad) {
		skip()
		if (substr(doc, pos, 1) != "\"") fail("expected a key")
		key = string()
		skip()
		if (substr(doc, pos, 1) != ":") fail("expected ':'")
		pos++
		value(path "." key)
		skip()
		c = substr(doc, pos++, 1)
		if (c == "}") return
		if (c != ",") fail("expected ',' or '}'")
	}
}

function array(path,   i, c) {
	pos++
	skip()
	if (substr(doc, pos, 1) == "]") { pos++; return }
	for (i = 0; !bad; i++) {
		value(path "[" i "]")
		skip()
		c = substr(doc, pos++, 1)
		if (c == "]") return
		if (c != ",") fail("expected ',' or ']'")
	}
}

function hexval(h,   i, v) {
	v = 0
	for (i = 1; i <= length(h); i++) v = v * 16 + index("0123456789abcdef", tolower(substr(h, i, 1))) - 1
	return v
}

function string(   out, c, e, code) {
	pos++
	out = ""
	while (pos <= n) {
		if (match(substr(doc, pos), /^[^"\\]+/)) {
			out = out substr(doc, pos, RLENGTH)
			pos += RLENGTH
			continue
		}
		c = substr(doc, pos, 1)
		if (c == "\"") { pos++; return out }
		e = substr(doc, pos + 1, 1)
		pos += 2
		if (e == "u") {
			code = hexval(substr(doc, pos, 4))
			pos += 4
			# Only ASCII is decoded; anything else (hostnames and keys are ASCII) becomes '?'.
			out = out ((code >= 32 && code < 127) ? sprintf("%c", code) : (code < 32 ? " " : "?"))
		} else if (e == "n" || e == "r" || e == "t" || e == "b" || e == "f") out = out " "
		else out = out e
	}
	fail("unterminated string")
}
