package eventlog

import (
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mimamori/mimamori/events"
)

// CloudEvents Kafka binding, binary mode: attributes are headers with the
// ce_ prefix, the payload is the record value.
const (
	hdrID          = "ce_id"
	hdrSource      = "ce_source"
	hdrType        = "ce_type"
	hdrSpecVersion = "ce_specversion"
	hdrTime        = "ce_time"
	hdrSubject     = "ce_subject"
	hdrContentType = "content-type"
)

// ToRecord turns an envelope into a Kafka record on topic, keyed by the
// envelope's subject (the aggregate ID).
func ToRecord(topic string, e events.Envelope) *kgo.Record {
	h := []kgo.RecordHeader{
		{Key: hdrID, Value: []byte(e.ID)},
		{Key: hdrSource, Value: []byte(e.Source)},
		{Key: hdrType, Value: []byte(e.Type)},
		{Key: hdrSpecVersion, Value: []byte(e.SpecVersion)},
		{Key: hdrTime, Value: []byte(e.Time.UTC().Format(time.RFC3339Nano))},
		{Key: hdrContentType, Value: []byte(e.DataContentType)},
	}
	if e.Subject != "" {
		h = append(h, kgo.RecordHeader{Key: hdrSubject, Value: []byte(e.Subject)})
	}
	return &kgo.Record{Topic: topic, Key: []byte(e.Subject), Value: e.Data, Headers: h, Timestamp: e.Time}
}

// FromRecord reads the envelope out of a Kafka record.
func FromRecord(r *kgo.Record) (events.Envelope, error) {
	var e events.Envelope
	for _, h := range r.Headers {
		switch h.Key {
		case hdrID:
			e.ID = string(h.Value)
		case hdrSource:
			e.Source = string(h.Value)
		case hdrType:
			e.Type = string(h.Value)
		case hdrSpecVersion:
			e.SpecVersion = string(h.Value)
		case hdrSubject:
			e.Subject = string(h.Value)
		case hdrContentType:
			e.DataContentType = string(h.Value)
		case hdrTime:
			t, err := time.Parse(time.RFC3339Nano, string(h.Value))
			if err != nil {
				return e, fmt.Errorf("record %s/%d@%d: header ce_time: %w", r.Topic, r.Partition, r.Offset, err)
			}
			e.Time = t
		}
	}
	if e.ID == "" || e.Type == "" {
		return e, fmt.Errorf("record %s/%d@%d: not a CloudEvent (ce_id or ce_type header missing)", r.Topic, r.Partition, r.Offset)
	}
	e.Data = r.Value
	return e, nil
}
