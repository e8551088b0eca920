package main

import (
	"context"
	"fmt"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// The health statuses Argo CD accepts from a script; anything else becomes Unknown there.
var argocdStatuses = map[string]bool{
	"Healthy": true, "Progressing": true, "Degraded": true,
	"Suspended": true, "Missing": true, "Unknown": true,
}

// argocdHealth runs a resource.customizations.health script the way Argo CD runs a
// user-configured one (argo-cd util/lua): gopher-lua with only the package, base and table
// libraries (no string or math library unless the operator of Argo CD sets useOpenLibs), a
// one-second deadline, the live object as the global `obj`, and the returned table read as
// {status, message}. Argo CD also opens a reduced `os` library (time and date functions); it is
// left out here, which is stricter: a script that works here does not depend on it.
func argocdHealth(obj map[string]any, script string) (Verdict, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			return Verdict{}, fmt.Errorf("opening %s: %w", lib.name, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", toLua(l, obj))
	if err := l.DoString(script); err != nil {
		return Verdict{}, fmt.Errorf("health script failed: %w", err)
	}
	hs, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return Verdict{}, fmt.Errorf("health script returned %s, Argo CD expects a table", l.Get(-1).Type())
	}
	status := lua.LVAsString(hs.RawGetString("status"))
	message := lua.LVAsString(hs.RawGetString("message"))
	if !argocdStatuses[status] {
		// What Argo CD shows for an invalid code.
		return Verdict{Status: "Unknown", Message: "Lua returned an invalid health status: " + status}, nil
	}
	return Verdict{Status: status, Message: message}, nil
}

// toLua converts decoded JSON the way Argo CD hands the live object to a script: integers and
// floats become numbers, arrays become 1-based sequences, null becomes nil.
func toLua(l *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case int64:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case []any:
		t := l.CreateTable(len(v), 0)
		for _, item := range v {
			t.Append(toLua(l, item))
		}
		return t
	case map[string]any:
		t := l.CreateTable(0, len(v))
		for key, item := range v {
			t.RawSetString(key, toLua(l, item))
		}
		return t
	default:
		return lua.LNil
	}
}
