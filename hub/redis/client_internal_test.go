package redis

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// TestParseTarget: what each scheme's URL turns into, passwords percent-decoded, and the
// URLs refused, with ErrURL and without the password.
func TestParseTarget(t *testing.T) {
	tg, err := parseTarget("redis+cluster://ann:p%40ss%3Aw@10.0.0.1:7000,10.0.0.2:7001")
	if err != nil {
		t.Fatal(err)
	}
	c := tg.cluster
	if c == nil || tg.single != nil || tg.failover != nil || !reflect.DeepEqual(c.Addrs, []string{"10.0.0.1:7000", "10.0.0.2:7001"}) ||
		c.Username != "ann" || c.Password != "p@ss:w" || c.MaxRetries != -1 || tg.where != "10.0.0.1:7000,10.0.0.2:7001" {
		t.Fatalf("cluster: %+v %+v", tg, c)
	}

	tg, err = parseTarget("redis+sentinel://:s3cret@mymaster@10.0.0.1:26379,10.0.0.2:26379/2?sentinel_password=sp")
	if err != nil {
		t.Fatal(err)
	}
	f := tg.failover
	if f == nil || tg.cluster != nil || f.MasterName != "mymaster" || !reflect.DeepEqual(f.SentinelAddrs, []string{"10.0.0.1:26379", "10.0.0.2:26379"}) ||
		f.Password != "s3cret" || f.Username != "" || f.DB != 2 || f.SentinelPassword != "sp" || f.MaxRetries != -1 ||
		tg.where != "mymaster@10.0.0.1:26379,10.0.0.2:26379" {
		t.Fatalf("sentinel: %+v %+v", tg, f)
	}
	tg, err = parseTarget("redis+sentinel://mymaster@10.0.0.1:26379")
	if err != nil || tg.failover.MasterName != "mymaster" || tg.failover.Password != "" || tg.failover.DB != 0 {
		t.Fatalf("sentinel without a password: %+v %v", tg, err)
	}
	tg, err = parseTarget("redis://:pw@127.0.0.1:6379/3")
	if err != nil || tg.single == nil || tg.single.DB != 3 || tg.where != "127.0.0.1:6379" {
		t.Fatalf("redis://: %+v %v", tg, err)
	}

	for _, bad := range []string{
		"redis+cluster://",
		"redis+cluster://:hunter2@10.0.0.1",
		"redis+cluster://:hunter2@10.0.0.1:7000/1",
		"redis+cluster://:hunter2@10.0.0.1:7000?sentinel_password=hunter2",
		"redis+cluster://a@b@10.0.0.1:7000",
		"redis+sentinel://10.0.0.1:26379",
		"redis+sentinel://:hunter2@@10.0.0.1:26379",
		"redis+sentinel://m@10.0.0.1:26379/x",
		"redis+sentinel://m@10.0.0.1:26379,/0",
		"redis+sentinel://m@10.0.0.1:26379/0?db=1",
		"redis+sentinel://m@10.0.0.1:26379/0#frag",
	} {
		_, err := parseTarget(bad)
		if !errors.Is(err, ErrURL) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: %v, want ErrURL without the password", bad, err)
		}
	}
}
