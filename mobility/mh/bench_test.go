package mh

import "testing"

func BenchmarkParseBU(b *testing.B) {
	buf := samples()["BU home registration"].Marshal()
	var m Message
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := Parse(buf, &m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseBA(b *testing.B) {
	buf := samples()["BA"].Marshal()
	var m Message
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := Parse(buf, &m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBuildBU(b *testing.B) {
	m := samples()["BU home registration"]
	buf := make([]byte, 0, 128)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		buf = m.Append(buf[:0])
	}
}

func BenchmarkBuildBA(b *testing.B) {
	m := samples()["BA"]
	buf := make([]byte, 0, 128)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		buf = m.Append(buf[:0])
	}
}
