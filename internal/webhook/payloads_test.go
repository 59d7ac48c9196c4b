package webhook_test

import (
	"encoding/json"
	"strconv"
)

// testEntry is one entry[] of a payload built by payload.
type testEntry struct {
	waba    string
	changes []testChange
}

// testChange is one entry[].changes[] of a payload built by payload.
type testChange struct {
	phone    string
	messages []any
}

// entry is an entry of account waba with one change, for phone, holding
// messages.
func entry(waba, phone string, messages ...any) testEntry {
	return testEntry{waba: waba, changes: []testChange{{phone: phone, messages: messages}}}
}

// payload builds a webhook body in the shape Meta sends, of entries.
func payload(entries ...testEntry) []byte {
	type value struct {
		MessagingProduct string            `json:"messaging_product"`
		Metadata         map[string]string `json:"metadata"`
		Messages         []any             `json:"messages,omitempty"`
	}
	type change struct {
		Field string `json:"field"`
		Value value  `json:"value"`
	}
	type entryJSON struct {
		ID      string   `json:"id"`
		Changes []change `json:"changes"`
	}
	p := struct {
		Object string      `json:"object"`
		Entry  []entryJSON `json:"entry"`
	}{Object: "whatsapp_business_account", Entry: []entryJSON{}}
	for _, e := range entries {
		ej := entryJSON{ID: e.waba, Changes: []change{}}
		for _, c := range e.changes {
			ej.Changes = append(ej.Changes, change{Field: "messages", Value: value{
				MessagingProduct: "whatsapp",
				Metadata:         map[string]string{"display_phone_number": "15550104477", "phone_number_id": c.phone},
				Messages:         c.messages,
			}})
		}
		p.Entry = append(p.Entry, ej)
	}
	b, err := json.Marshal(p)
	if err != nil {
		panic(err)
	}
	return b
}

// textMessage is an inbound text message with id.
func textMessage(id string) map[string]any {
	return map[string]any{
		"from":      "12025550142",
		"id":        id,
		"timestamp": "1764137400",
		"type":      "text",
		"text":      map[string]string{"body": "hello"},
	}
}

// textMessages are n text messages, with ids prefix.0, prefix.1, ….
func textMessages(prefix string, n int) []any {
	msgs := make([]any, n)
	for i := range msgs {
		msgs[i] = textMessage(prefix + "." + strconv.Itoa(i))
	}
	return msgs
}
