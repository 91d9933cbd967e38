//! A faithful local Microsoft Graph.
