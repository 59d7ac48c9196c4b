package main

import (
	"encoding/json"
	"fmt"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/wa2genesys/connectorcache/internal/redact"
)

// The configuration types that hold secrets print and log themselves with
// every secret masked: the app secrets, the verify tokens, the Genesys
// client secrets, and the module's Redis passwords. String serves %v and
// %+v, GoString serves %#v, Format every other verb, MarshalJSON
// encoding/json and zap.Reflect, MarshalLogObject zap.Object and zap.Any.
// A new secret field must be masked in its type's redact and
// MarshalLogObject.

// Twins of the configuration types without their methods, which fmt
// formats field by field. Their nested configuration types keep theirs, so
// each masks its own secrets.
type (
	plainConfig         Config
	plainTenantConfig   TenantConfig
	plainTenantWhatsApp TenantWhatsApp
	plainTenantGenesys  TenantGenesys
)

// redact returns c with its app secret masked; its module's configuration
// (app.Config) and its tenants mask their own secrets.
func (c Config) redact() plainConfig {
	c.AppSecret = redact.Secret(c.AppSecret)
	return plainConfig(c)
}

// String formats c as %+v would, every secret masked.
func (c Config) String() string { return fmt.Sprintf("%+v", c.redact()) }

// GoString formats c as %#v would, every secret masked.
func (c Config) GoString() string { return redact.GoSyntax("main.Config", c.redact()) }

// Format formats c for every verb, every secret masked: %#v as GoString, any other
// verb as it formats String.
func (c Config) Format(f fmt.State, verb rune) { redact.Format(f, verb, c.String, c.GoString) }

// MarshalJSON encodes c as encoding/json would, every secret masked.
func (c Config) MarshalJSON() ([]byte, error) { return json.Marshal(c.redact()) }

// MarshalLogObject logs c's settings, every secret masked.
func (c Config) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddBool("dev", c.Dev)
	enc.AddString("store", c.Module.Store)
	if c.Module.Redis.URL != "" {
		enc.AddString("redis_url", c.Module.Redis.RedactedURL())
	}
	enc.AddString("delivery", c.Delivery)
	enc.AddString("app_secret", redact.Secret(c.AppSecret))
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
	t.VerifyToken = redact.Secret(t.VerifyToken)
	return plainTenantConfig(t)
}

// String formats t as %+v would, every secret masked.
func (t TenantConfig) String() string { return fmt.Sprintf("%+v", t.redact()) }

// GoString formats t as %#v would, every secret masked.
func (t TenantConfig) GoString() string { return redact.GoSyntax("main.TenantConfig", t.redact()) }

// Format formats t for every verb, every secret masked: %#v as GoString, any other
// verb as it formats String.
func (t TenantConfig) Format(f fmt.State, verb rune) { redact.Format(f, verb, t.String, t.GoString) }

// MarshalJSON encodes t as encoding/json would, every secret masked.
func (t TenantConfig) MarshalJSON() ([]byte, error) { return json.Marshal(t.redact()) }

// MarshalLogObject logs t's settings, every secret masked.
func (t TenantConfig) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("id", t.ID)
	enc.AddString("verify_token", redact.Secret(t.VerifyToken))
	if err := enc.AddObject("whatsapp", t.WhatsApp); err != nil {
		return err
	}
	return enc.AddObject("genesys", t.Genesys)
}

// redact returns w with its app secret masked.
func (w TenantWhatsApp) redact() plainTenantWhatsApp {
	w.AppSecret = redact.Secret(w.AppSecret)
	return plainTenantWhatsApp(w)
}

// String formats w as %+v would, its app secret masked.
func (w TenantWhatsApp) String() string { return fmt.Sprintf("%+v", w.redact()) }

// GoString formats w as %#v would, its app secret masked.
func (w TenantWhatsApp) GoString() string { return redact.GoSyntax("main.TenantWhatsApp", w.redact()) }

// Format formats w for every verb, its app secret masked: %#v as GoString, any other
// verb as it formats String.
func (w TenantWhatsApp) Format(f fmt.State, verb rune) { redact.Format(f, verb, w.String, w.GoString) }

// MarshalJSON encodes w as encoding/json would, its app secret masked.
func (w TenantWhatsApp) MarshalJSON() ([]byte, error) { return json.Marshal(w.redact()) }

// MarshalLogObject logs w's settings, its app secret masked.
func (w TenantWhatsApp) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	zap.Strings("waba_ids", w.WABAIDs).AddTo(enc)
	zap.Strings("phone_number_ids", w.PhoneNumberIDs).AddTo(enc)
	enc.AddString("app_secret", redact.Secret(w.AppSecret))
	return nil
}

// redact returns g with its client secret masked.
func (g TenantGenesys) redact() plainTenantGenesys {
	g.ClientSecret = redact.Secret(g.ClientSecret)
	return plainTenantGenesys(g)
}

// String formats g as %+v would, its client secret masked.
func (g TenantGenesys) String() string { return fmt.Sprintf("%+v", g.redact()) }

// GoString formats g as %#v would, its client secret masked.
func (g TenantGenesys) GoString() string { return redact.GoSyntax("main.TenantGenesys", g.redact()) }

// Format formats g for every verb, its client secret masked: %#v as GoString, any other
// verb as it formats String.
func (g TenantGenesys) Format(f fmt.State, verb rune) { redact.Format(f, verb, g.String, g.GoString) }

// MarshalJSON encodes g as encoding/json would, its client secret masked.
func (g TenantGenesys) MarshalJSON() ([]byte, error) { return json.Marshal(g.redact()) }

// MarshalLogObject logs g's settings, its client secret masked.
func (g TenantGenesys) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("region", g.Region)
	enc.AddString("client_id", g.ClientID)
	enc.AddString("client_secret", redact.Secret(g.ClientSecret))
	enc.AddString("integration_id", g.IntegrationID)
	enc.AddString("login_url", g.LoginURL)
	enc.AddString("api_url", g.APIURL)
	enc.AddInt("token_pool_size", g.TokenPoolSize)
	return nil
}
