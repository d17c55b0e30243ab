package events

import "time"

// TypeFirmwareNoticePublished is an operator's notice of a firmware update
// shown on the portal.
const TypeFirmwareNoticePublished = "mimamori.operations.firmware_notice_published.v1"

// FirmwareNoticePublished announces a firmware update to customers on the
// portal. Customers is as in FaultDeclared ("*" for every customer).
type FirmwareNoticePublished struct {
	NoticeID        string    `json:"notice_id"`
	Customers       string    `json:"customers"`
	FirmwareVersion string    `json:"firmware_version"`
	Summary         string    `json:"summary"`
	Details         string    `json:"details"`
	AvailableAt     time.Time `json:"available_at"` // when appliances start updating
	PublishedAt     time.Time `json:"published_at"`
}

func (*FirmwareNoticePublished) EventType() string { return TypeFirmwareNoticePublished }
func (*FirmwareNoticePublished) Topic() string     { return TopicOperations }
func (f *FirmwareNoticePublished) Key() string     { return f.NoticeID }
func (f *FirmwareNoticePublished) Validate() error {
	var v validator
	v.required("notice_id", f.NoticeID)
	v.max("notice_id", f.NoticeID, maxShort)
	v.required("customers", f.Customers)
	v.max("customers", f.Customers, 64*1024)
	v.required("firmware_version", f.FirmwareVersion)
	v.max("firmware_version", f.FirmwareVersion, maxShort)
	v.required("summary", f.Summary)
	v.max("summary", f.Summary, maxShort)
	v.max("details", f.Details, 8*maxLong)
	v.time("available_at", f.AvailableAt)
	v.time("published_at", f.PublishedAt)
	return v.err()
}
