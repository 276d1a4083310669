//! The project's side of Amazon CloudWatch: the alarms that terminate idle instances (`elb
//! launch --idle-terminate`), the fleet's figures published under the namespace `elb` (`elb stats
//! --publish`) and the project's dashboard (`elb cloudwatch dashboard`). The kill switch deletes
//! the alarms and the dashboard. CloudWatch is spoken in its Query protocol.

use std::time::Duration;

use crate::aws::Service;
use crate::cloud::errors::CloudError;
use crate::cloud::{Instance, MANAGED_BY};

use super::Ec2;

/// CloudWatch's EC2 metrics without detailed monitoring come every 5 minutes: an idle alarm
/// looks at periods of this length.
pub const IDLE_PERIOD: Duration = Duration::from_secs(300);
/// The longest an alarm may look back (`Period` x `EvaluationPeriods`): one day.
pub const MAX_IDLE: Duration = Duration::from_secs(86_400);
/// Most alarms one `DeleteAlarms` call takes.
const DELETE_BATCH: usize = 100;
/// Most metric data one `PutMetricData` call takes.
const PUT_BATCH: usize = 1000;
/// Most queries one `GetMetricData` call takes.
const GET_BATCH: usize = 500;

/// An idle instance's end: terminated by CloudWatch once its highest CPU of every 5-minute
/// period stayed below `cpu_percent` for `after`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IdleTerminate {
    /// A multiple of [`IDLE_PERIOD`], at most [`MAX_IDLE`].
    pub after: Duration,
    /// Between 0 and 100, exclusive.
    pub cpu_percent: f64,
}

impl IdleTerminate {
    /// Checks the bounds CloudWatch sets; the error says what is wrong and the fix.
    pub fn new(after: Duration, cpu_percent: f64) -> Result<Self, String> {
        let period = IDLE_PERIOD.as_secs();
        let secs = after.as_secs();
        if secs == 0
            || !secs.is_multiple_of(period)
            || after.subsec_nanos() != 0
            || after > MAX_IDLE
        {
            return Err(format!(
                "{after:?}: CloudWatch sees an instance's CPU in 5-minute periods and looks back \
                 at most a day: give a multiple of 5 minutes up to 24h, e.g. 60m"
            ));
        }
        if !(cpu_percent > 0.0 && cpu_percent < 100.0) {
            return Err(format!(
                "{cpu_percent}: an idle threshold is a CPU percentage above 0 and below 100, \
                 e.g. 5"
            ));
        }
        Ok(Self { after, cpu_percent })
    }

    /// `60m`, for people and `elb ls`.
    pub fn describe(&self) -> String {
        let minutes = self.after.as_secs() / 60;
        if minutes.is_multiple_of(60) {
            format!("{}h", minutes / 60)
        } else {
            format!("{minutes}m")
        }
    }
}

/// An idle alarm of the project, as CloudWatch holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct IdleAlarm {
    pub name: String,
    pub arn: String,
    /// The instance it terminates.
    pub instance_id: String,
    pub idle: IdleTerminate,
}

/// One series asked of `GetMetricData`: a metric with its dimensions, a statistic (`Average`,
/// `Sum`, `Maximum`, or a percentile such as `p99`) and a period.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricQuery {
    /// Unique within one call: `[a-z][a-zA-Z0-9_]*`.
    pub id: String,
    pub namespace: &'static str,
    pub metric: &'static str,
    pub dimensions: Vec<(&'static str, String)>,
    pub stat: String,
    pub period_secs: u64,
}

/// What `GetMetricData` answered for one query: its datapoints (seconds since the epoch,
/// value) in time order, and whether CloudWatch says the series is complete.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSeries {
    pub id: String,
    pub points: Vec<(u64, f64)>,
    pub complete: bool,
}

/// One figure for `PutMetricData`: a metric of the namespace with its dimensions, value and
/// unit (CloudWatch's unit names: `Percent`, `Count/Second`, `Milliseconds`, `Count`).
#[derive(Debug, Clone, PartialEq)]
pub struct Datum {
    pub metric: &'static str,
    pub dimensions: Vec<(&'static str, String)>,
    pub value: f64,
    pub unit: &'static str,
}

impl Datum {
    /// The data of `figures` (`(metric, value, unit)`) under `dimensions`, those without a
    /// value left out: a figure not seen is a gap in CloudWatch, never a 0.
    pub fn seen(
        dimensions: &[(&'static str, String)],
        figures: impl IntoIterator<Item = (&'static str, Option<f64>, &'static str)>,
    ) -> Vec<Self> {
        figures
            .into_iter()
            .filter_map(|(metric, value, unit)| {
                Some(Self {
                    metric,
                    dimensions: dimensions.to_vec(),
                    value: value?,
                    unit,
                })
            })
            .collect()
    }
}

impl Ec2 {
    /// The prefix of the names of the project's idle alarms.
    fn idle_prefix(&self) -> String {
        format!("elb-{}-idle-", self.project)
    }

    /// The project's dashboard's name.
    pub fn dashboard_name(&self) -> String {
        format!("elb-{}", self.project)
    }

    /// Gives each of `instances` its idle alarm (`elb-<project>-idle-<instance id>`, tagged
    /// `Project`, `ManagedBy` and `Name`), replacing one of the same name. Returns the ids of
    /// the instances left without one when a call fails, with the error.
    pub async fn put_idle_alarms(
        &self,
        instances: &[Instance],
        idle: IdleTerminate,
    ) -> Result<(), (Vec<String>, CloudError)> {
        let periods = idle.after.as_secs() / IDLE_PERIOD.as_secs();
        for (i, instance) in instances.iter().enumerate() {
            let name = format!("{}{}", self.idle_prefix(), instance.id);
            let mut params = Service::CloudWatch.params();
            params
                .set("AlarmName", &name)
                .set(
                    "AlarmDescription",
                    format!(
                        "elb: terminates {} (project {}, cluster {}) once its CPU stays below \
                         {}% for {}",
                        instance.id,
                        self.project,
                        instance.cluster,
                        idle.cpu_percent,
                        idle.describe()
                    ),
                )
                .set("Namespace", "AWS/EC2")
                .set("MetricName", "CPUUtilization")
                .set("Statistic", "Maximum")
                .set("Period", IDLE_PERIOD.as_secs())
                .set("EvaluationPeriods", periods)
                .set("Threshold", idle.cpu_percent)
                .set("ComparisonOperator", "LessThanThreshold")
                // A stopped instance publishes nothing: no data is not idleness.
                .set("TreatMissingData", "missing")
                .list(
                    "AlarmActions",
                    [format!("arn:aws:automate:{}:ec2:terminate", self.region)],
                )
                .structs("Dimensions", [&instance.id], |p, prefix, id| {
                    p.set(format!("{prefix}.Name"), "InstanceId")
                        .set(format!("{prefix}.Value"), id);
                })
                .pairs(
                    "Tags",
                    [
                        ("Project", self.project.as_str()),
                        ("ManagedBy", MANAGED_BY),
                        ("Name", name.as_str()),
                    ],
                );
            if let Err(e) = self
                .call("cloudwatch:PutMetricAlarm", &params, |_| ())
                .await
            {
                let left = instances[i..].iter().map(|i| i.id.clone()).collect();
                return Err((left, e));
            }
        }
        Ok(())
    }

    /// The idle alarms named with the project's prefix, one `DescribeAlarms` a page: enough to
    /// say which of the project's instances carry one (`elb ls` matches them by instance),
    /// not to delete them ([`Ec2::idle_alarms`]).
    pub async fn named_idle_alarms(&self) -> Result<Vec<IdleAlarm>, CloudError> {
        let mut params = Service::CloudWatch.params();
        params
            .set("AlarmNamePrefix", self.idle_prefix())
            .set("AlarmTypes.member.1", "MetricAlarm");
        super::pages(
            &self.client,
            "cloudwatch:DescribeAlarms",
            &params,
            "NextToken",
            |root| {
                let alarms = root
                    .list("MetricAlarms")
                    .filter_map(|a| {
                        let name = a.text("AlarmName")?.to_owned();
                        let instance_id = a
                            .list("Dimensions")
                            .find(|d| d.text("Name") == Some("InstanceId"))?
                            .string("Value");
                        let period: u64 = a.number("Period")?;
                        let periods: u64 = a.number("EvaluationPeriods")?;
                        let idle = IdleTerminate {
                            after: Duration::from_secs(period * periods),
                            cpu_percent: a.number("Threshold")?,
                        };
                        Some(IdleAlarm {
                            name,
                            arn: a.string("AlarmArn"),
                            instance_id,
                            idle,
                        })
                    })
                    .collect();
                (alarms, root.text("NextToken").map(str::to_owned))
            },
        )
        .await
    }

    /// The project's idle alarms: those named with its prefix whose `Project` tag is the
    /// project's (a prefix alone could be another project's: `a` and `a-idle`), for the kill
    /// switch.
    pub async fn idle_alarms(&self) -> Result<Vec<IdleAlarm>, CloudError> {
        let found = self.named_idle_alarms().await?;
        let mut ours = Vec::with_capacity(found.len());
        for alarm in found {
            let mut params = Service::CloudWatch.params();
            params.set("ResourceARN", &alarm.arn);
            let project = self
                .call("cloudwatch:ListTagsForResource", &params, |root| {
                    root.tag("Tags", "Project").map(str::to_owned)
                })
                .await?;
            if project.as_deref() == Some(self.project.as_str()) {
                ours.push(alarm);
            }
        }
        Ok(ours)
    }

    /// The project's idle alarms and its dashboard's name if it exists, for the kill switch.
    pub async fn cloudwatch_plan(&self) -> Result<(Vec<IdleAlarm>, Option<String>), CloudError> {
        let alarms = self.idle_alarms().await?;
        let dashboard = self.has_dashboard().await?.then(|| self.dashboard_name());
        Ok((alarms, dashboard))
    }

    /// Deletes the alarms called `names`.
    pub async fn delete_alarms(&self, names: &[String]) -> Result<(), CloudError> {
        for batch in names.chunks(DELETE_BATCH) {
            let mut params = Service::CloudWatch.params();
            params.list("AlarmNames", batch);
            self.call("cloudwatch:DeleteAlarms", &params, |_| ())
                .await?;
        }
        Ok(())
    }

    /// Publishes `data` under `namespace`, within `PutMetricData`'s limit per call.
    pub async fn put_metrics(&self, namespace: &str, data: &[Datum]) -> Result<(), CloudError> {
        for batch in data.chunks(PUT_BATCH) {
            let mut params = Service::CloudWatch.params();
            params
                .set("Namespace", namespace)
                .structs("MetricData", batch, |p, prefix, datum| {
                    p.set(format!("{prefix}.MetricName"), datum.metric)
                        .set(format!("{prefix}.Value"), datum.value)
                        .set(format!("{prefix}.Unit"), datum.unit);
                    let dimensions = format!("{prefix}.Dimensions");
                    p.structs(&dimensions, &datum.dimensions, |p, at, (name, value)| {
                        p.set(format!("{at}.Name"), name)
                            .set(format!("{at}.Value"), value);
                    });
                });
            self.call("cloudwatch:PutMetricData", &params, |_| ())
                .await?;
        }
        Ok(())
    }

    /// The datapoints of `queries` between `start` and `end` (seconds since the epoch): one
    /// `GetMetricData` call per 500 queries (its limit), each followed through its pages.
    pub async fn metric_data(
        &self,
        queries: &[MetricQuery],
        start: u64,
        end: u64,
    ) -> Result<Vec<MetricSeries>, CloudError> {
        let time = |secs: u64| {
            aws_smithy_types::DateTime::from_secs(i64::try_from(secs).unwrap_or(i64::MAX))
                .fmt(aws_smithy_types::date_time::Format::DateTime)
                .unwrap_or_default()
        };
        let mut all: Vec<MetricSeries> = Vec::with_capacity(queries.len());
        for batch in queries.chunks(GET_BATCH) {
            let mut params = Service::CloudWatch.params();
            params
                .set("StartTime", time(start))
                .set("EndTime", time(end))
                .set("ScanBy", "TimestampAscending")
                .structs("MetricDataQueries", batch, |p, prefix, query| {
                    let stat = format!("{prefix}.MetricStat");
                    p.set(format!("{prefix}.Id"), &query.id)
                        .set(format!("{stat}.Metric.Namespace"), query.namespace)
                        .set(format!("{stat}.Metric.MetricName"), query.metric)
                        .set(format!("{stat}.Period"), query.period_secs)
                        .set(format!("{stat}.Stat"), &query.stat);
                    let dimensions = format!("{stat}.Metric.Dimensions");
                    p.structs(&dimensions, &query.dimensions, |p, at, (name, value)| {
                        p.set(format!("{at}.Name"), name)
                            .set(format!("{at}.Value"), value);
                    });
                });
            let pages = super::pages(
                &self.client,
                "cloudwatch:GetMetricData",
                &params,
                "NextToken",
                |root| {
                    let series = root
                        .list("MetricDataResults")
                        .map(|r| {
                            let times = r.list("Timestamps").map(|t| {
                                aws_smithy_types::DateTime::from_str(
                                    t.own_text().trim(),
                                    aws_smithy_types::date_time::Format::DateTime,
                                )
                                .map_or(0, |d| u64::try_from(d.secs()).unwrap_or(0))
                            });
                            let values = r
                                .list("Values")
                                .map(|v| v.own_text().trim().parse().unwrap_or(f64::NAN));
                            MetricSeries {
                                id: r.string("Id"),
                                points: times.zip(values).filter(|(_, v)| v.is_finite()).collect(),
                                complete: r.text("StatusCode") == Some("Complete"),
                            }
                        })
                        .collect();
                    (series, root.text("NextToken").map(str::to_owned))
                },
            )
            .await?;
            // A series continued on a later page comes back under its id again.
            for page in pages {
                match all.iter_mut().find(|s| s.id == page.id) {
                    Some(series) => {
                        series.points.extend(page.points);
                        series.complete = page.complete;
                    }
                    None => all.push(page),
                }
            }
        }
        for series in &mut all {
            series.points.sort_by_key(|(t, _)| *t);
        }
        Ok(all)
    }

    /// Creates or replaces the project's dashboard with `body` (CloudWatch's dashboard JSON).
    pub async fn put_dashboard(&self, body: &str) -> Result<(), CloudError> {
        let mut params = Service::CloudWatch.params();
        params
            .set("DashboardName", self.dashboard_name())
            .set("DashboardBody", body);
        self.call("cloudwatch:PutDashboard", &params, |_| ()).await
    }

    /// Whether the project's dashboard exists.
    pub async fn has_dashboard(&self) -> Result<bool, CloudError> {
        let name = self.dashboard_name();
        let mut params = Service::CloudWatch.params();
        params.set("DashboardNamePrefix", &name);
        let names = super::pages(
            &self.client,
            "cloudwatch:ListDashboards",
            &params,
            "NextToken",
            |root| {
                let names: Vec<String> = root
                    .list("DashboardEntries")
                    .map(|d| d.string("DashboardName"))
                    .collect();
                (names, root.text("NextToken").map(str::to_owned))
            },
        )
        .await?;
        Ok(names.contains(&name))
    }

    /// Deletes the project's dashboard.
    pub async fn delete_dashboard(&self) -> Result<(), CloudError> {
        let mut params = Service::CloudWatch.params();
        params.list("DashboardNames", [self.dashboard_name()]);
        self.call("cloudwatch:DeleteDashboards", &params, |_| ())
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_bounds_are_cloudwatchs() {
        let minutes = |m: u64| Duration::from_secs(m * 60);
        assert!(IdleTerminate::new(minutes(60), 5.0).is_ok());
        assert_eq!(
            IdleTerminate::new(minutes(60), 5.0).unwrap().describe(),
            "1h"
        );
        assert_eq!(
            IdleTerminate::new(minutes(35), 5.0).unwrap().describe(),
            "35m"
        );
        for (after, cpu, needle) in [
            (minutes(7), 5.0, "multiple of 5 minutes"),
            (minutes(0), 5.0, "multiple of 5 minutes"),
            (minutes(24 * 60 + 5), 5.0, "up to 24h"),
            (minutes(60), 0.0, "above 0"),
            (minutes(60), 100.0, "below 100"),
        ] {
            let e = IdleTerminate::new(after, cpu).unwrap_err();
            assert!(e.contains(needle), "{after:?} {cpu}: {e}");
        }
    }

    #[test]
    fn metric_data_is_member_lists() {
        let mut p = Service::CloudWatch.params();
        p.structs("MetricData", [("CPU", "i-1")], |p, prefix, (metric, id)| {
            p.set(format!("{prefix}.MetricName"), metric);
            p.structs(&format!("{prefix}.Dimensions"), [id], |p, at, id| {
                p.set(format!("{at}.Value"), id);
            });
        });
        let body = p.body("PutMetricData", "2010-08-01");
        assert!(
            body.contains("MetricData.member.1.MetricName=CPU"),
            "{body}"
        );
        assert!(
            body.contains("MetricData.member.1.Dimensions.member.1.Value=i-1"),
            "{body}"
        );
    }
}
