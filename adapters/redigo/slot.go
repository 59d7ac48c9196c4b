package redigo

import "strings"

// numSlots is how many hash slots a Redis Cluster divides its keys into.
const numSlots = 16384

// crc16Table is the CRC-16/XMODEM table (polynomial 0x1021) that Redis
// Cluster hashes keys with.
var crc16Table = func() (t [256]uint16) {
	for i := range t {
		crc := uint16(i) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
		t[i] = crc
	}
	return t
}()

func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc = crc<<8 ^ crc16Table[byte(crc>>8)^s[i]]
	}
	return crc
}

// Slot returns the Redis Cluster hash slot of key. When key holds a hash
// tag, a non-empty part between the first '{' and the first '}' after it,
// only the tag is hashed, so that keys sharing it share a slot.
func Slot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return int(crc16(key)) % numSlots
}
