"""The care network: partner clinics and pharmacies, night/holiday hours, referrals."""
