package config

import (
	"encoding"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// Binder ties a main's flags to the fields of its config sections, so that no main copies
// a setting: a field tagged `flag:"kebab-name" help:"..."` (beside its `toml:"snake_name"`)
// gets a flag of that name whose default is the field's value when the section is bound.
// Settings then come in one order: the defaults (the section's values at Section), the
// TOML file (Load), the flags actually given on the command line (Apply). Sizes
// (bytesize.Size) read "1GiB" or a byte count in both places, durations "1s", slices a
// comma list on a flag (a flag given twice adds to the list).
//
// The binding is by reflection over the tags, so this package imports none of the
// packages whose sections it binds.
type Binder struct {
	fl       *pflag.FlagSet
	sections map[string]any
	defaults []func() // restore each section's defaults
	given    []given  // the flags the command line gave, in order
	replay   bool
}

type given struct {
	f    *field
	text string
}

// NewBinder binds onto fl.
func NewBinder(fl *pflag.FlagSet) *Binder {
	return &Binder{fl: fl, sections: map[string]any{}}
}

// FlagSet is the flag set the binder registers on.
func (b *Binder) FlagSet() *pflag.FlagSet { return b.fl }

// Section registers the TOML section name, decoded into ptr (a pointer to a struct that
// holds its defaults), and a flag for each tagged field. When only names flags, just those
// are registered (a daemon that reads [tiers] for two roots offers no flag for the others).
// An empty name binds flags only: a command without a config file.
func (b *Binder) Section(name string, ptr any, only ...string) *Binder {
	v := reflect.ValueOf(ptr)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		panic(fmt.Sprintf("config: section %s: want a pointer to a struct, got %T", name, ptr))
	}
	if name != "" {
		b.sections[name] = ptr
	}
	def := reflect.New(v.Elem().Type()).Elem()
	def.Set(v.Elem())
	b.defaults = append(b.defaults, func() { v.Elem().Set(def) })
	want := map[string]bool{}
	for _, o := range only {
		want[o] = true
	}
	b.bindStruct(name, "", v.Elem(), want)
	for o := range want {
		if b.fl.Lookup(o) == nil {
			panic(fmt.Sprintf("config: section %s has no flag %q", name, o))
		}
	}
	return b
}

func (b *Binder) bindStruct(section, prefix string, v reflect.Value, only map[string]bool) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		key := strings.Split(sf.Tag.Get("toml"), ",")[0]
		if key == "-" {
			continue
		}
		if key == "" {
			key = sf.Name
		}
		fv := v.Field(i)
		name := sf.Tag.Get("flag")
		if name == "" {
			if sf.Type.Kind() == reflect.Struct && !isLeaf(fv) {
				p := prefix + key + "."
				if sf.Anonymous {
					p = prefix
				}
				b.bindStruct(section, p, fv, only)
			}
			continue
		}
		if len(only) > 0 && !only[name] {
			continue
		}
		f := &field{b: b, v: fv}
		if err := f.check(); err != nil {
			panic(fmt.Sprintf("config: [%s] %s%s: %v", section, prefix, key, err))
		}
		usage := strings.TrimSpace(sf.Tag.Get("help"))
		if section != "" {
			usage += fmt.Sprintf(" ([%s] %s%s)", section, prefix, key)
		}
		fl := b.fl.VarPF(f, name, sf.Tag.Get("short"), strings.TrimSpace(usage))
		if fv.Kind() == reflect.Bool {
			fl.NoOptDefVal = "true"
		}
	}
}

// Load sets every section back to its defaults and decodes the TOML file at path over them
// (nothing when path is empty); an unknown key in a bound section is an error naming it.
// The flags are applied by Apply, so that a caller can check what the file alone gives
// (cli.Validate).
func (b *Binder) Load(path string) error {
	for _, d := range b.defaults {
		d()
	}
	return Load(path, b.sections)
}

// Apply sets the values of the flags the command line gave, in the order given, over what
// Load left.
func (b *Binder) Apply() {
	b.replay = true
	defer func() { b.replay = false }()
	seen := map[*field]bool{}
	for _, g := range b.given {
		if !seen[g.f] {
			g.f.n = 0
			seen[g.f] = true
		}
		if err := g.f.Set(g.text); err != nil {
			panic(err) // parsed once already
		}
	}
}

// Changed reports whether the command line gave the flag name.
func (b *Binder) Changed(name string) bool { return b.fl.Changed(name) }

// field is a pflag.Value writing one struct field.
type field struct {
	b *Binder
	v reflect.Value
	n int // values set in this pass (a slice flag given again adds to its list)
}

var (
	durationType = reflect.TypeOf(time.Duration(0))
	textType     = reflect.TypeOf((*encoding.TextUnmarshaler)(nil)).Elem()
	valueType    = reflect.TypeOf((*pflag.Value)(nil)).Elem()
)

// isLeaf reports whether a struct-typed field is one value (time.Time, a TextUnmarshaler).
func isLeaf(v reflect.Value) bool {
	return v.Addr().Type().Implements(textType) || v.Addr().Type().Implements(valueType)
}

func (f *field) check() error {
	if f.v.Addr().Type().Implements(valueType) || f.v.Addr().Type().Implements(textType) || f.v.Type() == durationType {
		return nil
	}
	switch f.v.Kind() {
	case reflect.String, reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return nil
	case reflect.Slice:
		e := reflect.New(f.v.Type().Elem()).Elem()
		if e.Kind() == reflect.Slice {
			return fmt.Errorf("no flag for a %s", f.v.Type())
		}
		return (&field{v: e}).check()
	}
	return fmt.Errorf("no flag for a %s", f.v.Type())
}

func (f *field) Set(text string) error {
	if f.b != nil && !f.b.replay {
		f.b.given = append(f.b.given, given{f, text})
	}
	if f.v.Kind() == reflect.Slice && !f.v.Addr().Type().Implements(valueType) && !f.v.Addr().Type().Implements(textType) {
		var items []string
		if strings.TrimSpace(text) != "" {
			items = strings.Split(text, ",")
		}
		out := reflect.MakeSlice(f.v.Type(), 0, len(items))
		if f.n > 0 {
			out = reflect.AppendSlice(out, f.v)
		}
		for _, it := range items {
			e := reflect.New(f.v.Type().Elem()).Elem()
			if err := setScalar(e, strings.TrimSpace(it)); err != nil {
				return err
			}
			out = reflect.Append(out, e)
		}
		f.v.Set(out)
		f.n++
		return nil
	}
	f.n++
	return setScalar(f.v, text)
}

func setScalar(v reflect.Value, text string) error {
	if p, ok := v.Addr().Interface().(pflag.Value); ok {
		return p.Set(text)
	}
	if p, ok := v.Addr().Interface().(encoding.TextUnmarshaler); ok {
		return p.UnmarshalText([]byte(text))
	}
	if v.Type() == durationType {
		d, err := time.ParseDuration(text)
		if err != nil {
			return fmt.Errorf("duration %q: want a number with a unit, such as 500ms, 30s or 2h", text)
		}
		v.SetInt(int64(d))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(text)
	case reflect.Bool:
		x, err := strconv.ParseBool(text)
		if err != nil {
			return fmt.Errorf("%q: want true or false", text)
		}
		v.SetBool(x)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		x, err := strconv.ParseInt(strings.TrimSpace(text), 0, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("%q: want an integer", text)
		}
		v.SetInt(x)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		x, err := strconv.ParseUint(strings.TrimSpace(text), 0, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("%q: want a non-negative integer", text)
		}
		v.SetUint(x)
	case reflect.Float32, reflect.Float64:
		x, err := strconv.ParseFloat(strings.TrimSpace(text), v.Type().Bits())
		if err != nil {
			return fmt.Errorf("%q: want a number", text)
		}
		v.SetFloat(x)
	default:
		return fmt.Errorf("no flag for a %s", v.Type())
	}
	return nil
}

func (f *field) String() string {
	if !f.v.IsValid() {
		return ""
	}
	if f.v.Type() == durationType && f.v.Int() == 0 {
		return "0"
	}
	if s, ok := f.v.Interface().(fmt.Stringer); ok {
		return s.String()
	}
	if s, ok := f.v.Addr().Interface().(fmt.Stringer); ok {
		return s.String()
	}
	if f.v.Kind() == reflect.Slice {
		parts := make([]string, f.v.Len())
		for i := range parts {
			parts[i] = fmt.Sprint(f.v.Index(i).Interface())
		}
		return strings.Join(parts, ",")
	}
	return fmt.Sprint(f.v.Interface())
}

func (f *field) Type() string {
	if p, ok := f.v.Addr().Interface().(pflag.Value); ok {
		return p.Type()
	}
	switch {
	case f.v.Type() == durationType:
		return "duration"
	case f.v.Kind() == reflect.Slice && f.v.Type().Elem().Kind() >= reflect.Int && f.v.Type().Elem().Kind() <= reflect.Uint64:
		return "ints"
	case f.v.Kind() == reflect.Slice:
		return "strings"
	case f.v.Kind() == reflect.Bool:
		return "bool"
	case f.v.Kind() >= reflect.Int && f.v.Kind() <= reflect.Uint64:
		return "int"
	case f.v.Kind() == reflect.Float32 || f.v.Kind() == reflect.Float64:
		return "float"
	}
	return "string"
}

// FileOnly registers a section read from the file only: no flags.
func (b *Binder) FileOnly(name string, ptr any) *Binder {
	v := reflect.ValueOf(ptr)
	b.sections[name] = ptr
	def := reflect.New(v.Elem().Type()).Elem()
	def.Set(v.Elem())
	b.defaults = append(b.defaults, func() { v.Elem().Set(def) })
	return b
}
