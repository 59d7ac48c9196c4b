package main

import (
	"fmt"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// The configuration types that hold secrets print and log themselves with
// every secret masked: the app secrets, the verify tokens, the Genesys
// client secrets, and the module's Redis passwords. String serves %v and
// %+v, GoString serves %#v, MarshalLogObject serves zap.Object and zap.Any.
// A new secret field must be masked in its type's redact and
// MarshalLogObject.

// redacted stands in for a secret's value wherever a configuration is
// printed or logged.
const redacted = "[redacted]"

// mask returns redacted for a secret that is set, and "" for one that is
// not, so that a reader still sees which are set.
func mask(secret string) string {
	if secret == "" {
		return ""
	}
	return redacted
}

// Twins of the configuration types without their methods, which fmt
// formats field by field. Their nested configuration types keep theirs, so
// each masks its own secrets.
type (
	plainConfig         Config
	plainTenantConfig   TenantConfig
	plainTenantWhatsApp TenantWhatsApp
	plainTenantGenesys  TenantGenesys
)

// goString formats twin, a plain twin, with %#v under name, the name of
// the type it twins.
func goString(name string, twin any) string {
	_, fields, _ := strings.Cut(fmt.Sprintf("%#v", twin), "{")
	return name + "{" + fields
}

// redact returns c with its secrets masked and its Redis URL's password
// hidden; its tenants mask their own.
func (c Config) redact() plainConfig {
	c.AppSecret = mask(c.AppSecret)
	redis := &c.Module.Redis
	if redis.URL != "" {
		redis.URL = redis.RedactedURL()
	}
	redis.Password = mask(redis.Password)
	redis.Sentinel.Password = mask(redis.Sentinel.Password)
	return plainConfig(c)
}

// String formats c as %+v would, every secret masked.
func (c Config) String() string { return fmt.Sprintf("%+v", c.redact()) }

// GoString formats c as %#v would, every secret masked.
func (c Config) GoString() string { return goString("main.Config", c.redact()) }

// MarshalLogObject logs c's settings, every secret masked.
func (c Config) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddBool("dev", c.Dev)
	enc.AddString("store", c.Module.Store)
	if c.Module.Redis.URL != "" {
		enc.AddString("redis_url", c.Module.Redis.RedactedURL())
	}
	enc.AddString("delivery", c.Delivery)
	enc.AddString("app_secret", mask(c.AppSecret))
	err := enc.AddObject("http", zapcore.ObjectMarshalerFunc(func(enc zapcore.ObjectEncoder) error {
		enc.AddString("addr", c.HTTP.Addr)
		enc.AddString("admin_addr", c.HTTP.AdminAddr)
		enc.AddDuration("shutdown_timeout", c.HTTP.ShutdownTimeout)
		enc.AddInt("max_inflight_bodies", c.HTTP.MaxInflightBodies)
		enc.AddDuration("body_timeout", c.HTTP.BodyTimeout)
		enc.AddDuration("request_timeout", c.HTTP.RequestTimeout)
		return nil
	}))
	if err != nil {
		return err
	}
	enc.AddInt("webhook_max_messages", c.Webhook.MaxMessages)
	err = enc.AddObject("genesys", zapcore.ObjectMarshalerFunc(func(enc zapcore.ObjectEncoder) error {
		enc.AddDuration("timeout", c.Genesys.Timeout)
		enc.AddDuration("max_retry_after", c.Genesys.MaxRetryAfter)
		enc.AddString("login_url", c.Genesys.LoginURL)
		enc.AddString("api_url", c.Genesys.APIURL)
		enc.AddBool("allow_insecure_http", c.Genesys.AllowInsecureHTTP)
		return nil
	}))
	if err != nil {
		return err
	}
	return enc.AddArray("tenants", zapcore.ArrayMarshalerFunc(func(arr zapcore.ArrayEncoder) error {
		for _, t := range c.Tenants {
			if err := arr.AppendObject(t); err != nil {
				return err
			}
		}
		return nil
	}))
}

// redact returns t with its verify token masked; its WhatsApp and Genesys
// settings mask their own secrets.
func (t TenantConfig) redact() plainTenantConfig {
	t.VerifyToken = mask(t.VerifyToken)
	return plainTenantConfig(t)
}

// String formats t as %+v would, every secret masked.
func (t TenantConfig) String() string { return fmt.Sprintf("%+v", t.redact()) }

// GoString formats t as %#v would, every secret masked.
func (t TenantConfig) GoString() string { return goString("main.TenantConfig", t.redact()) }

// MarshalLogObject logs t's settings, every secret masked.
func (t TenantConfig) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("id", t.ID)
	enc.AddString("verify_token", mask(t.VerifyToken))
	if err := enc.AddObject("whatsapp", t.WhatsApp); err != nil {
		return err
	}
	return enc.AddObject("genesys", t.Genesys)
}

// redact returns w with its app secret masked.
func (w TenantWhatsApp) redact() plainTenantWhatsApp {
	w.AppSecret = mask(w.AppSecret)
	return plainTenantWhatsApp(w)
}

// String formats w as %+v would, its app secret masked.
func (w TenantWhatsApp) String() string { return fmt.Sprintf("%+v", w.redact()) }

// GoString formats w as %#v would, its app secret masked.
func (w TenantWhatsApp) GoString() string { return goString("main.TenantWhatsApp", w.redact()) }

// MarshalLogObject logs w's settings, its app secret masked.
func (w TenantWhatsApp) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	zap.Strings("waba_ids", w.WABAIDs).AddTo(enc)
	zap.Strings("phone_number_ids", w.PhoneNumberIDs).AddTo(enc)
	enc.AddString("app_secret", mask(w.AppSecret))
	return nil
}

// redact returns g with its client secret masked.
func (g TenantGenesys) redact() plainTenantGenesys {
	g.ClientSecret = mask(g.ClientSecret)
	return plainTenantGenesys(g)
}

// String formats g as %+v would, its client secret masked.
func (g TenantGenesys) String() string { return fmt.Sprintf("%+v", g.redact()) }

// GoString formats g as %#v would, its client secret masked.
func (g TenantGenesys) GoString() string { return goString("main.TenantGenesys", g.redact()) }

// MarshalLogObject logs g's settings, its client secret masked.
func (g TenantGenesys) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("region", g.Region)
	enc.AddString("client_id", g.ClientID)
	enc.AddString("client_secret", mask(g.ClientSecret))
	enc.AddString("integration_id", g.IntegrationID)
	enc.AddString("login_url", g.LoginURL)
	enc.AddString("api_url", g.APIURL)
	enc.AddInt("token_pool_size", g.TokenPoolSize)
	return nil
}
