package dynamo

import (
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/kiehook/kiehook/functions/internal/task"
)

// update builds an update expression conditional on the record's status.
type update struct {
	sets, adds, removes []string
	condition           string
	names               map[string]string
	values              map[string]types.AttributeValue
	events              Events // an ended record stays in the open index until notified
	ends                bool   // the update moves the record to a final status
	from                task.Status
}

func (s *Store) newUpdate(from task.Status, now time.Time) *update {
	b := &update{
		from:      from,
		events:    s.events,
		condition: "#" + attrStatus + " = :from",
		sets:      make([]string, 0, 8),
		names:     make(map[string]string, 8),
		values:    make(map[string]types.AttributeValue, 8),
	}
	b.name(attrStatus)
	b.values[":from"] = str(string(from))
	if !now.IsZero() {
		b.stamp(now)
	}
	return b
}

// stamp moves the record's updatedAt to now.
func (b *update) stamp(now time.Time) { b.set(attrUpdatedAt, str(task.Timestamp(now))) }

// setStatus moves the record to s, in or out of the open index. A record
// leaving a final status owes a new event, so its notifiedAt goes (an open
// record has none).
func (b *update) setStatus(s task.Status) {
	b.ends = task.Final(s)
	b.set(attrStatus, str(string(s)))
	if indexed(s, b.events) {
		b.set(attrOpenStatus, str(string(s)))
	} else {
		b.remove(attrOpenStatus)
	}
	if task.Final(b.from) {
		b.remove(attrNotifiedAt)
	}
}

// indexed reports whether a record in status s is in the open index: while
// it is open, and, with events, while its event is due.
func indexed(s task.Status, events Events) bool {
	return task.Open(s) || bool(events) && task.Final(s)
}

// orStatus also accepts a record in status s: the status clause that
// newUpdate began the condition with widens, and every clause added since
// stays.
func (b *update) orStatus(s task.Status) {
	status := b.name(attrStatus)
	b.condition = strings.Replace(b.condition, status+" = :from", status+" IN (:from, :from2)", 1)
	b.values[":from2"] = str(string(s))
}

// heldBy requires the lease of owner; with no owner, that no lease is
// live at now.
func (b *update) heldBy(owner string, now time.Time) {
	if owner == "" {
		b.unleased(now)
		return
	}
	b.condition += " AND " + b.name(attrLeaseOwner) + " = :owner"
	b.values[":owner"] = str(owner)
}

// unleased requires that no copier's lease is live at now.
func (b *update) unleased(now time.Time) {
	until := b.name(attrLeaseUntil)
	b.condition += " AND (attribute_not_exists(" + until + ") OR " + until + " <= :now)"
	b.values[":now"] = num(now.UnixMilli())
}

// endLease drops the lease and the uploads of a task whose copy ended.
func (b *update) endLease() {
	b.remove(attrLeaseOwner)
	b.remove(attrLeaseUntil)
	b.remove(attrUploads)
}

// Every attribute goes through a name placeholder: status and error are
// reserved words, and the list grows.
func (b *update) name(attr string) string {
	p := placeholdersOf(attr)
	b.names[p.name] = attr
	return p.name
}

// set sets attr to v, through the value placeholder :attr.
func (b *update) set(attr string, v types.AttributeValue) {
	p := placeholdersOf(attr)
	b.names[p.name] = attr
	b.sets = append(b.sets, p.assign)
	b.values[p.value] = v
}

// setList sets a list, or removes the attribute when the list is empty:
// emulators store empty lists as maps, and an absent list reads the same.
func (b *update) setList(attr string, v *types.AttributeValueMemberL) {
	if len(v.Value) == 0 {
		b.remove(attr)
		return
	}
	b.set(attr, v)
}

func (b *update) add(attr string, v types.AttributeValue) {
	p := placeholdersOf(attr)
	b.names[p.name] = attr
	b.adds = append(b.adds, p.name+" "+p.value)
	b.values[p.value] = v
}

// placeholders are an attribute's name and value placeholders in an
// expression, and its assignment: made once, for the callback's hot path.
type placeholders struct{ name, value, assign string }

var placeholderTable = func() map[string]placeholders {
	t := make(map[string]placeholders, len(attributes))
	for _, a := range attributes {
		t[a] = placeholders{name: "#" + a, value: ":" + a, assign: "#" + a + " = :" + a}
	}
	return t
}()

func placeholdersOf(attr string) placeholders {
	if p, ok := placeholderTable[attr]; ok {
		return p
	}
	return placeholders{name: "#" + attr, value: ":" + attr, assign: "#" + attr + " = :" + attr}
}

func (b *update) remove(attr string) { b.removes = append(b.removes, b.name(attr)) }

func (b *update) expression() string {
	var e string
	if len(b.sets) > 0 {
		e = " SET " + strings.Join(b.sets, ", ")
	}
	if len(b.adds) > 0 {
		e += " ADD " + strings.Join(b.adds, ", ")
	}
	if len(b.removes) > 0 {
		e += " REMOVE " + strings.Join(b.removes, ", ")
	}
	return e[1:]
}
